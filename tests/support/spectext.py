"""Fixed texts from the spec (websockify 0.13.0), written out by hand for byte-exact checks."""

#: The ``--traffic`` legend, spec §3.4, verbatim (leading empty line included).
LEGEND = """
Traffic Legend:
    }  - Client receive
    }. - Client receive partial
    {  - Target receive

    >  - Target send
    >. - Target send partial
    <  - Client send
    <. - Client send partial
"""
