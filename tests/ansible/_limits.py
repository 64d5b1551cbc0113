"""Run by tests.ansible.oracle in a subprocess: ansible-playbook's --limit semantics
(``subset(limit)``, then the hosts of ``all``), one JSON answer per pattern."""

import json
import sys
import warnings

warnings.simplefilter("ignore")

from ansible.errors import AnsibleError  # noqa: E402
from ansible.inventory.manager import InventoryManager  # noqa: E402
from ansible.parsing.dataloader import DataLoader  # noqa: E402

inventory = InventoryManager(loader=DataLoader(), sources=json.loads(sys.argv[1]))
answers = {}
for pattern in json.loads(sys.argv[2]):
    try:
        inventory.subset(pattern)
        answers[pattern] = sorted(h.name for h in inventory.get_hosts("all"))
    except AnsibleError as exc:
        answers[pattern] = {"error": str(exc).splitlines()[0]}
    finally:
        inventory.subset(None)
        inventory.clear_pattern_cache()
print(json.dumps(answers))
