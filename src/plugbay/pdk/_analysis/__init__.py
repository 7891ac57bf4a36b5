"""The parts of the plugin analyzer, one concern a module; import from
:mod:`plugbay.pdk.analyzer`, which assembles them."""
