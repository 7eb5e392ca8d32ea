"""The sign-in and sign-out forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length, Regexp

from keyservice.identity import NAME_MAX
from keyservice.people import PASSWORD_MAX


class LoginForm(FlaskForm):  # type: ignore[misc]
    """Name, password and the current TOTP code (docs/people.md)."""

    name = StringField("Name", validators=[InputRequired(), Length(max=NAME_MAX)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=PASSWORD_MAX)])
    code = StringField("TOTP code", validators=[InputRequired(), Regexp(r"^\s*\d{6}\s*$", message="six digits")])


class PostForm(FlaskForm):  # type: ignore[misc]
    """A form with nothing but its CSRF token: sign-out and the action buttons."""
