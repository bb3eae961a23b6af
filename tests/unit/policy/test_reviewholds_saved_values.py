"""Review of what a hold keeps when its saved search cannot be read (holds.held_query,
retention's holds.active): a saved search stored before values were checked (not an
object, no "query", a query not text), or a peer's saved search whose query this release
does not parse (its shape is checked at merge, not its syntax), must read fail-safe, as
an unreadable hold does: the hold holds everything (""). Found by review: holds.active
raised TypeError/KeyError, or returned a query that matching_in then refuses with
QuerySyntaxError, so every retention run and the holds page failed while the hold stood
(MEDIUM: nothing deleted, but retention stopped and the holds page broken)."""
import datetime as dt

import pytest

from services.archive.search import parse
from services.policy import holds
from tests.unit.policy.test_hold_chains import peer_entry
from tests.unit.policy.test_hold_clash import HOLD, place, replicas

STORED = ["not an object", ["from:carol"], {"q": "from:carol"}, {"query": None},
          {"query": 5}, {"query": ["from:carol"]}]
UNPARSED = ["from:(", '"unclosed', "date:notadate", "size:>>", "NOT", "(", ")"]


@pytest.mark.parametrize("value", STORED, ids=repr)
def test_a_hold_on_an_odd_stored_saved_search_holds_everything(tmp_path, value):
    (a,) = replicas(tmp_path, "a")
    a.put("saved:case", value)
    place(a, HOLD, 1000.0, [])
    assert holds.active(a, dt.date.today()) == [(HOLD, "")]


@pytest.mark.parametrize("query", UNPARSED)
def test_a_hold_on_a_peers_unparsable_saved_search_holds_everything(tmp_path, query):
    (a,) = replicas(tmp_path, "a")
    a.put("saved:case", {"query": "from:carol"})
    place(a, HOLD, 1000.0, [])
    assert a.merge({"saved:case": peer_entry({"query": query})}) == 1
    for _, held in holds.active(a, dt.date.today()):
        parse(held)  # retention's matching_in parses it: it must not raise
    assert holds.active(a, dt.date.today()) == [(HOLD, "")]
