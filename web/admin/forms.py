"""The admin UI's forms (Flask-WTF: every POST form carries a CSRF token; GET filters carry none)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp

from globalplatform.cplc import CPLC_FIELDS
from keyservice.identity import NAME_MAX
from keyservice.people import PASSWORD_MAX, PASSWORD_MIN, Role

FILTER_MAX = 128


class AuditFilter(FlaskForm):  # type: ignore[misc]
    """The audit log's filters (exact values), from the query string."""

    class Meta:
        csrf = False

    actor = StringField("Actor", validators=[Optional(), Length(max=FILTER_MAX)])
    operation = StringField("Operation", validators=[Optional(), Length(max=FILTER_MAX)])
    outcome = SelectField("Outcome (blank: any)", choices=["", "ok", "refused", "failed"], validators=[Optional()])
    target = StringField("Target", validators=[Optional(), Length(max=FILTER_MAX)])
    limit = IntegerField("Records", default=100, validators=[Optional(), NumberRange(1, 10000)])


class SeSearch(FlaskForm):  # type: ignore[misc]
    """Find secure elements by SE id, CIN or one CPLC field (the IC serial number, the fabricator, ...)."""

    class Meta:
        csrf = False

    se_id = StringField("SE id", validators=[Optional(), Length(max=FILTER_MAX)])
    cin = StringField("CIN", validators=[Optional(), Regexp(r"^[0-9A-Fa-f]{0,64}$", message="hex digits")])
    cplc_field = SelectField("CPLC field", choices=["", *CPLC_FIELDS], validators=[Optional()])
    cplc_value = StringField("CPLC value", validators=[Optional(), Regexp(r"^[0-9A-Fa-f]{0,8}$",
                                                                          message="hex digits")])

    def cplc(self) -> tuple[str, str] | None:
        """(field, hex value) when both are given (the registry checks the value's length)."""
        return (self.cplc_field.data, self.cplc_value.data) if self.cplc_field.data or self.cplc_value.data \
            else None


class MonthForm(FlaskForm):  # type: ignore[misc]
    """A month (YYYY-MM, UTC) and optionally one SP."""

    class Meta:
        csrf = False

    month = StringField("Month", validators=[Optional(), Regexp(r"^\d{4}-\d{2}$", message="YYYY-MM")])
    sp = StringField("Service provider", validators=[Optional(), Length(max=FILTER_MAX)])


class EnrollForm(FlaskForm):  # type: ignore[misc]
    """Enroll a person: name, role, an initial password and, for SP and vendor people, their owner."""

    name = StringField("Name", validators=[InputRequired(), Length(max=NAME_MAX)])
    role = SelectField("Role", choices=[r.value for r in Role], validators=[InputRequired()])
    password = PasswordField("Initial password", validators=[InputRequired(), Length(PASSWORD_MIN, PASSWORD_MAX)])
    owner = StringField("Owner (SP or SE vendor)", validators=[Optional(), Length(max=FILTER_MAX)])


class ReauthForm(FlaskForm):  # type: ignore[misc]
    """Every ceremony action asks the signed-in person again for their password and current TOTP code
    (docs/ceremonies.md, "In the browser"): the name is the signed-in person's, never a field."""

    password = PasswordField("Your password", validators=[InputRequired(), Length(max=PASSWORD_MAX)])
    code = StringField("Current TOTP code", validators=[InputRequired(), Regexp(r"^\s*\d{6}\s*$",
                                                                                    message="six digits")])


class JoinForm(ReauthForm):
    """Join a ceremony in one role (the service checks it is the person's enrolled role)."""

    role = SelectField("Role", choices=[r.value for r in Role], validators=[InputRequired()])


class SignForm(ReauthForm):
    """Sign a step; the inputs some steps need (a component and its KCV, a KCV to confirm, a key block, a new
    person's initial password) are typed by the signer."""

    component = PasswordField("Component (hex)", validators=[Optional(), Length(max=FILTER_MAX)])
    kcv = StringField("KCV", validators=[Optional(), Length(max=16)])
    block = StringField("Key block", validators=[Optional(), Length(max=4096)])
    new_password = PasswordField("The new person's initial password", validators=[Optional(),
                                                                                  Length(max=PASSWORD_MAX)])


class AbortForm(ReauthForm):
    """Abort a ceremony, with the reason recorded."""

    reason = StringField("Reason", validators=[InputRequired(), Length(max=500)])
