"""The docs rendered from code match the code: a changed catalogue without `kap docs` fails here."""
from __future__ import annotations

import pytest

from kap.settings import PROJECT_ROOT
from kap.docs.generated import GENERATED


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_doc_is_current(name):
    path = PROJECT_ROOT / "docs" / name
    assert path.exists(), f"docs/{name} is missing: run `kap docs`"
    assert path.read_text(encoding="utf-8") == GENERATED[name](), f"docs/{name} is stale: run `kap docs`"
