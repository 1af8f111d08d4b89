"""The hub: the towns' cloud centre — import, blob store and relay, enrolment, health."""
