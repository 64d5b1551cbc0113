"""The engine: the rollout controller (:mod:`.rollout`, :mod:`.batching`), runs and their
resumption (:mod:`.runs`), one host's pipeline (:mod:`.pipeline`), leases with fencing and the
stop signal (:mod:`.leases`), and the journal (:mod:`.journal`). Stages are in
:mod:`fleet.stages`; the engine runs them through :data:`fleet.stages.registry.STAGES`.
"""
