"""The admin UI's role matrix (docs/operations.md, "Admin UI"): which roles open which page. Each view names
its entry with `role_required(*ROLES)`; the navigation and tests/web/test_ui_matrix.py follow the views."""

from __future__ import annotations

from typing import Final

from keyservice.people import Role

OFFICER, CUSTODIAN, AUDITOR, OPERATOR, VENDOR, SP, ADMIN = (Role.OFFICER, Role.CUSTODIAN, Role.AUDITOR, Role.OPERATOR,
                                                             Role.VENDOR, Role.SP, Role.ADMIN)

DASHBOARD: Final = (OFFICER, CUSTODIAN, AUDITOR, OPERATOR, ADMIN)
KEYS: Final = (OFFICER, CUSTODIAN, AUDITOR)
AUDIT: Final = (OFFICER, AUDITOR)
PEOPLE: Final = (OFFICER, AUDITOR, ADMIN)
ENROLL: Final = (OFFICER,)
"""The key service lets only officers enroll (and, after the bootstrap, only with approvals)."""
SECURE_ELEMENTS: Final = (OFFICER, AUDITOR, OPERATOR, VENDOR)
"""A vendor's person sees its own SEs only (the service layer's tenancy)."""
SE_ACTIONS: Final = (OPERATOR,)
"""Report lost, unlock, delete a service: customer care's work."""
JOBS: Final = (OFFICER, AUDITOR, OPERATOR, SP)
METERING: Final = (OFFICER, AUDITOR, ADMIN, SP)
"""An SP's person sees its own downloads only."""
CEREMONIES: Final = (OFFICER, CUSTODIAN, AUDITOR)
"""Read the list, the types and a ceremony's detail."""
CEREMONY_ACT: Final = (OFFICER, CUSTODIAN)
"""Join and sign steps (the ceremony's runtime checks each step's role)."""
CEREMONY_OFFICER: Final = (OFFICER,)
"""Start, approve and abort: officers only (the runtime and the key service check it again)."""
EVIDENCE: Final = (OFFICER, AUDITOR)
"""Download the transcript (JSON, printable HTML), its hash anchored in the audit chain."""
