"""The steps of provisioning jobs by name (the names a job's plan stores, tsm_core/jobs/plan.py)."""

from __future__ import annotations

from typing import Final

from tsm_core.jobs import appstate, content, dm, domains, purse
from tsm_core.jobs.stepcontext import Step

STEPS: Final[dict[str, Step]] = {
    "dm-keys": Step(dm.probe_dm_keys, dm.run_dm_keys),
    "ssd": Step(domains.probe_ssd, domains.run_ssd, domains.after_ssd),
    "ssd-keys": Step(domains.probe_ssd_keys, domains.run_ssd_keys, domains.after_ssd_keys),
    "put-key": Step(domains.probe_put_key, domains.run_put_key, domains.after_put_key),
    "load": Step(content.probe_load, content.run_load),
    "install": Step(content.probe_install, content.run_install, check=content.check_space),
    "extradite": Step(content.probe_extradite, content.run_extradite),
    "personalize": Step(content.probe_personalize, content.run_personalize, repeatable=False,
                        check=content.check_personalize),
    "activate": Step(content.probe_activate, content.run_activate),
    "lock": Step(appstate.probe_lock, appstate.run_lock),
    "unlock": Step(appstate.probe_unlock, appstate.run_unlock),
    "backup": Step(purse.probe_backup, purse.run_backup),
    "delete": Step(appstate.probe_delete, appstate.run_delete),
    "cleanup": Step(appstate.probe_cleanup, appstate.run_cleanup),
    "credit": Step(purse.probe_credit, purse.run_credit),
}
