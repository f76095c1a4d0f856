"""Relational storage: deployed definitions, the instance index and the inbox projection."""
