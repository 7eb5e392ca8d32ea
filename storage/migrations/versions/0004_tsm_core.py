"""The TSM core: tenants, SE profiles and secure elements, security domains and key sets, card content, the
catalog (load files, apps), service instances, jobs with their steps and APDU log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tsm_tenants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("sd_mode", sa.String(4), nullable=False, server_default="cm"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", name="uq_tsm_tenants_name"),
    )
    op.create_table(
        "tsm_se_profiles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("scp", sa.Integer, nullable=False),
        sa.Column("i", sa.Integer, nullable=False),
        sa.Column("diversification", sa.String(8), nullable=False),
        sa.Column("kcv_method", sa.String(16), nullable=False, server_default="gp"),
        sa.Column("isd_aid", sa.String(32), nullable=False),
        sa.Column("ssd_package_aid", sa.String(32), nullable=False, server_default="A0000001515350"),
        sa.Column("ssd_module_aid", sa.String(32), nullable=False, server_default="A000000151535041"),
        sa.Column("initial_ssd_key", sa.String(128), nullable=False, server_default=""),
        sa.Column("load_file_hash", sa.String(8), nullable=False, server_default=""),
        sa.Column("nv_memory", sa.Integer, nullable=True),
        sa.Column("volatile_memory", sa.Integer, nullable=True),
        sa.UniqueConstraint("name", name="uq_tsm_se_profiles_name"),
    )
    op.create_table(
        "tsm_secure_elements",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kdd", sa.String(20), nullable=False),
        sa.Column("cin", sa.String(64), nullable=False, server_default=""),
        sa.Column("iin", sa.String(64), nullable=False, server_default=""),
        sa.Column("cplc", sa.String(128), nullable=False, server_default=""),
        sa.Column("ic_serial", sa.String(16), nullable=False, server_default="", index=True),
        sa.Column("device_kind", sa.String(16), nullable=False, server_default="card"),
        sa.Column("profile_id", sa.Integer, sa.ForeignKey("tsm_se_profiles.id"), nullable=False),
        sa.Column("vendor_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), nullable=True),
        sa.Column("isd_key", sa.String(128), nullable=False),
        sa.Column("isd_kvn", sa.Integer, nullable=False, server_default="0"),
        sa.Column("life_cycle", sa.String(16), nullable=False, server_default=""),
        sa.Column("free_nv", sa.Integer, nullable=True),
        sa.Column("free_volatile", sa.Integer, nullable=True),
        sa.Column("confirmation_counter", sa.Integer, nullable=False, server_default="-1"),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("kdd", name="uq_tsm_secure_elements_kdd"),
    )
    op.create_table(
        "tsm_security_domains",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("se_id", sa.String(32), sa.ForeignKey("tsm_secure_elements.id"), nullable=False, index=True),
        sa.Column("aid", sa.String(32), nullable=False),
        sa.Column("parent_aid", sa.String(32), nullable=False, server_default=""),
        sa.Column("mode", sa.String(4), nullable=False),
        sa.Column("sp_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), nullable=True),
        sa.Column("privileges", sa.String(6), nullable=False, server_default=""),
        sa.Column("life_cycle", sa.String(24), nullable=False, server_default=""),
        sa.Column("nv_quota", sa.Integer, nullable=True),
        sa.Column("volatile_quota", sa.Integer, nullable=True),
        sa.UniqueConstraint("se_id", "aid", name="uq_tsm_security_domains_se_id"),
    )
    op.create_table(
        "tsm_sd_key_sets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sd_id", sa.Integer, sa.ForeignKey("tsm_security_domains.id"), nullable=False, index=True),
        sa.Column("kvn", sa.Integer, nullable=False),
        sa.Column("keys", sa.String(400), nullable=False),
        sa.Column("diversification", sa.String(8), nullable=False, server_default="none"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("sd_id", "kvn", name="uq_tsm_sd_key_sets_sd_id"),
    )
    op.create_table(
        "tsm_card_entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("se_id", sa.String(32), sa.ForeignKey("tsm_secure_elements.id"), nullable=False, index=True),
        sa.Column("aid", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("life_cycle", sa.Integer, nullable=False, server_default="0"),
        sa.Column("privileges", sa.String(6), nullable=False, server_default=""),
        sa.Column("associated_sd", sa.String(32), nullable=False, server_default=""),
        sa.Column("elf_aid", sa.String(32), nullable=False, server_default=""),
        sa.Column("modules", sa.Text, nullable=False, server_default=""),
        sa.UniqueConstraint("se_id", "aid", name="uq_tsm_card_entries_se_id"),
    )
    op.create_table(
        "tsm_load_files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sp_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), nullable=False),
        sa.Column("package_aid", sa.String(32), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("module_aids", sa.Text, nullable=False),
        sa.Column("imports", sa.Text, nullable=False, server_default=""),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("lfdb", sa.LargeBinary, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("package_aid", "version", "sp_id", name="uq_tsm_load_files_package_aid"),
    )
    op.create_table(
        "tsm_apps",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("sp_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("load_file_id", sa.Integer, sa.ForeignKey("tsm_load_files.id"), nullable=False),
        sa.Column("module_aid", sa.String(32), nullable=False),
        sa.Column("instance_aid", sa.String(32), nullable=False),
        sa.Column("privileges", sa.String(6), nullable=False, server_default="00"),
        sa.Column("install_params", sa.Text, nullable=False, server_default=""),
        sa.Column("nv_quota", sa.Integer, nullable=True),
        sa.Column("volatile_quota", sa.Integer, nullable=True),
        sa.Column("target_profiles", sa.Text, nullable=False, server_default=""),
        sa.Column("perso", sa.Text, nullable=False, server_default=""),
        sa.Column("review", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("review_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("reviewed_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "tsm_service_instances",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("se_id", sa.String(32), sa.ForeignKey("tsm_secure_elements.id"), nullable=False, index=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("tsm_apps.id"), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="ordered"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("se_id", "app_id", name="uq_tsm_service_instances_se_id"),
    )
    op.create_table(
        "tsm_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("se_id", sa.String(32), sa.ForeignKey("tsm_secure_elements.id"), nullable=False, index=True),
        sa.Column("app_id", sa.String(32), sa.ForeignKey("tsm_apps.id"), nullable=True),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("running_se", sa.String(32), nullable=True),
        sa.Column("worker", sa.String(64), nullable=False, server_default=""),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("requested_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("running_se", name="uq_tsm_jobs_running_se"),
    )
    op.create_table(
        "tsm_job_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("tsm_jobs.id"), nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("job_id", "position", name="uq_tsm_job_steps_job_id"),
    )
    op.create_table(
        "tsm_apdu_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("tsm_jobs.id"), nullable=False, index=True),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("header", sa.String(8), nullable=False),
        sa.Column("lc", sa.Integer, nullable=False),
        sa.Column("sw", sa.String(4), nullable=False),
        sa.Column("micros", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tsm_apdu_log")
    op.drop_table("tsm_job_steps")
    op.drop_table("tsm_jobs")
    op.drop_table("tsm_service_instances")
    op.drop_table("tsm_apps")
    op.drop_table("tsm_load_files")
    op.drop_table("tsm_card_entries")
    op.drop_table("tsm_sd_key_sets")
    op.drop_table("tsm_security_domains")
    op.drop_table("tsm_secure_elements")
    op.drop_table("tsm_se_profiles")
    op.drop_table("tsm_tenants")
