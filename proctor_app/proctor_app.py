import reflex as rx

from proctor_app.api import build_api
from proctor_app.api.headers import with_security_headers
from proctor_app.config import config
from proctor_app.pages.admin_api_keys import admin_api_keys_page
from proctor_app.pages.admin_webhooks import admin_webhooks_page
from proctor_app.pages.api_session import api_session_page
from proctor_app.pages.admin_exams import admin_exam_edit_page, admin_exams_page
from proctor_app.pages.admin_health import admin_health_page
from proctor_app.pages.admin_organisations import admin_organisations_page
from proctor_app.pages.admin_settings import admin_settings_page
from proctor_app.pages.admin_users import admin_users_page
from proctor_app.pages.attempt_video import attempt_video_page
from proctor_app.pages.attempts_list import attempts_list_page
from proctor_app.pages.candidate_home import candidate_home_page
from proctor_app.pages.login import IndexState, forbidden_page, index_page, login_page
from proctor_app.pages.proctor_grid import proctor_grid_page
from proctor_app.pages.setup import setup_page
from proctor_app.pages.take_exam import take_exam_page
from proctor_app.state.admin_api_keys import AdminApiKeysState
from proctor_app.state.admin_webhooks import AdminWebhooksState
from proctor_app.state.api_session import ApiSessionState
from proctor_app.state.admin_exams import AdminExamEditState, AdminExamListState
from proctor_app.state.admin_health import AdminHealthState
from proctor_app.state.admin_organisations import AdminOrganisationsState
from proctor_app.state.admin_settings import AdminSettingsState
from proctor_app.state.admin_users import AdminUsersState
from proctor_app.state.attempt_video import AttemptVideoState
from proctor_app.state.attempts_list import AttemptsListState
from proctor_app.state.candidate_home import CandidateHomeState
from proctor_app.state.locale import LocaleState
from proctor_app.state.login import LoginState
from proctor_app.state.proctor_grid import ProctorGridState
from proctor_app.state.setup import SetupState
from proctor_app.state.take_exam import TakeExamState
from proctor_app.server import lifespan

# /api in front of Reflex, then security headers around both (pages, static files and /api).
# contrast.css: Radix colours that meet WCAG AA contrast on every page.
app = rx.App(api_transformer=[build_api(), with_security_headers(config.public_url)],
             stylesheets=["/contrast.css"])
app.register_lifespan_task(lifespan)

app.add_page(index_page, route="/", on_load=IndexState.on_load, title="Proctor")
# Candidates meet these two first: they speak the visitor's language too.
app.add_page(login_page, route="/login", on_load=[LocaleState.pick_language, LoginState.on_load],
             title="Sign in")
app.add_page(setup_page, route="/setup", on_load=SetupState.on_load, title="First run")
app.add_page(forbidden_page, route="/forbidden", on_load=LocaleState.pick_language, title="Not allowed")
app.add_page(admin_users_page, route="/admin/users", on_load=AdminUsersState.on_load, title="Users")
app.add_page(admin_exams_page, route="/admin/exams", on_load=AdminExamListState.on_load, title="Exams")
app.add_page(admin_exam_edit_page, route="/admin/exams/[exam_id]", on_load=AdminExamEditState.on_load,
             title="Exam")
app.add_page(admin_settings_page, route="/admin/settings", on_load=AdminSettingsState.on_load,
             title="Settings")
app.add_page(admin_api_keys_page, route="/admin/api-keys", on_load=AdminApiKeysState.on_load,
             title="API keys")
app.add_page(admin_webhooks_page, route="/admin/webhooks", on_load=AdminWebhooksState.on_load,
             title="Webhooks")
app.add_page(admin_organisations_page, route="/admin/organisations", on_load=AdminOrganisationsState.on_load,
             title="Organisations")
app.add_page(admin_health_page, route="/admin/health", on_load=AdminHealthState.on_load, title="Health")
# The candidate's pages speak the candidate's language: picked first, their texts follow it.
app.add_page(candidate_home_page, route="/candidate",
             on_load=[LocaleState.pick_language, CandidateHomeState.on_load], title="My exams")
app.add_page(take_exam_page, route="/candidate/exams/[exam_id]",
             on_load=[LocaleState.pick_language, TakeExamState.on_load], title="Exam")
# Opened through /launch/{token} (api/sdk.py): an API session's candidate page.
app.add_page(api_session_page, route="/proctoring/[exam_id]",
             on_load=[LocaleState.pick_language, TakeExamState.on_load, ApiSessionState.on_load],
             title="Proctoring session")
app.add_page(attempts_list_page, route="/attempts", on_load=AttemptsListState.on_load, title="Attempts")
app.add_page(attempt_video_page, route="/attempts/[attempt_id]/video", on_load=AttemptVideoState.on_load,
             title="Attempt video")
app.add_page(proctor_grid_page, route="/proctor", on_load=ProctorGridState.on_load,
             title="Live proctoring")
