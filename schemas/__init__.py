"""JSON Schemas of the rules file and of rule tests (package data)."""
