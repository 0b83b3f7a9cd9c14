"""Renderers by event family; `peekcli.render.dispatch` maps event types to them."""
