"""fleet: provision fleets of OVHcloud dedicated servers over SSH.

Rescue boots, staged provisioning plans, rolling batches with a failure budget, per-host leases,
and a journal that makes every rollout resumable. See ``docs/`` for the concepts.
"""

__version__ = "0.1.0"
