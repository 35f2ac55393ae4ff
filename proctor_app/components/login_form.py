import reflex as rx


class LoginForm(rx.NoSSRComponent):
    """A form around its children (the fields and the submit button) that posts them to
    /api/auth/login and then loads the `next` page, or shows the error (assets/login_form.js)."""

    library = "$/public/login_form.js"
    tag = "LoginForm"


login_form = LoginForm.create
