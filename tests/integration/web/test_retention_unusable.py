"""A retention policy that cannot be applied, in the web UI: its saved search was deleted on
the mirror peer while this appliance set the policy (both changes merged). The retention
page says that retention deletes nothing and why, the preview of a change says so too,
and the admin removes the policy from the page although its saved search is gone."""
import html

from services.policy import retention, saved_searches
from services.policy.audit import Actor
from services.policy.replicated import Replicated
from tests.integration.web.test_review import post
from tests.integration.web.test_ui import logged_in


def test_a_policy_without_its_saved_search_is_shown_and_can_be_removed(site):
    replicated = Replicated(site.archive.store)
    saved_searches.save(replicated, "contracts", "subject:contract", Actor("root", "admin"))
    retention.set_saved(replicated, "contracts", 3650)
    replicated.delete("saved:contracts")  # as a peer's deletion merged here
    admin = logged_in(site, "admin")
    page = html.unescape(admin.get("/retention").body.decode())
    assert "Retention deletes nothing: the policy on saved search contracts cannot be " \
           "applied (no saved search named 'contracts')" in page.replace("<strong>", "") \
        .replace("</strong>", "")
    assert '<option value="contracts">contracts</option>' in page
    preview = html.unescape(post(admin, "/retention/preview", "/retention", kind="global",
                                 enabled="on", global_days="1").body.decode())
    assert "Nothing would be deleted: the policy on saved search contracts cannot be " \
           "applied" in preview
    removal = post(admin, "/retention/preview", "/retention", kind="saved", name="contracts",
                   days="").body.decode()
    assert "Nothing would be deleted" not in removal
    assert post(admin, "/retention/saved", "/retention", confirmed="yes", name="contracts",
                days="").status == 303
    assert retention.policies(replicated)["saved"] == {}
    assert "cannot be applied" not in admin.get("/retention").body.decode()
