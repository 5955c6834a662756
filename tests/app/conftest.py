"""The app's tests run against the served model of tests/served.py (the `served` fixture)."""

from __future__ import annotations

import pytest


def clear_app_caches() -> None:
    """Streamlit's caches live in this process across AppTest runs (settings, the loaded model)."""
    import streamlit as st

    from app import common

    st.cache_resource.clear()
    st.cache_data.clear()
    common._ALIAS_LOOKUPS.clear()


@pytest.fixture(autouse=True)
def fresh_app_caches():
    clear_app_caches()
    yield
    clear_app_caches()
