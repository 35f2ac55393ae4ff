import reflex as rx


class LoginForm(rx.NoSSRComponent):
    """A form around its children (the fields and the submit button) that posts them to
    /api/auth/login, then loads the page again (its on_load goes on to `next`), or shows the
    error (assets/auth_forms.js)."""

    library = "$/public/auth_forms.js"
    tag = "LoginForm"

    fallback_error: rx.Var[str]


class LogoutForm(rx.NoSSRComponent):
    """A form around a submit button that posts to /api/auth/logout, then loads /login."""

    library = "$/public/auth_forms.js"
    tag = "LogoutForm"


login_form = LoginForm.create
logout_form = LogoutForm.create
