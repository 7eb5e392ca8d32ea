"""The admin UI's people: sign-in and sign-out (views.py), the signed-in user and role checks (users.py), the
forms (forms.py) and the session-signing key (secret.py)."""
