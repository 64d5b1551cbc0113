"""Run by tests.ansible.oracle in a subprocess: for each host, the options Ansible's connection
plugin (ssh, or paramiko_ssh when the host asks for it) resolves from the host's variables, as
its task executor does before connecting."""

import json
import sys
import warnings

warnings.simplefilter("ignore")

from ansible.inventory.manager import InventoryManager  # noqa: E402
from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.playbook.play_context import PlayContext  # noqa: E402
from ansible.plugins.loader import connection_loader, init_plugin_loader  # noqa: E402
from ansible.template import Templar  # noqa: E402
from ansible.vars.manager import VariableManager  # noqa: E402

init_plugin_loader()
loader = DataLoader()
inventory = InventoryManager(loader=loader, sources=sys.argv[1:])
manager = VariableManager(loader=loader, inventory=inventory)
answers = {}
for host in inventory.get_hosts("all"):
    variables = manager.get_vars(host=host, include_hostvars=False)
    paramiko = variables.get("ansible_connection") in ("paramiko", "paramiko_ssh")
    connection = connection_loader.get("paramiko_ssh" if paramiko else "ssh", PlayContext(), None)
    templar = Templar(loader=loader, variables=variables)
    connection.set_options(var_options=connection._resolve_option_variables(variables, templar))
    address = "remote_addr" if paramiko else "host"
    answers[host.name] = {
        "address": connection.get_option(address),
        "port": connection.get_option("port"),
        "user": connection.get_option("remote_user"),
        "key_file": connection.get_option("private_key_file"),
    }
print(json.dumps(answers))
