"""Reference chips (published parts) expressed in dse parameters, with sources."""
