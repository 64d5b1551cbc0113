"""Ansible itself, as the oracle of the inventory tests (ansible-core is a test dependency)."""
