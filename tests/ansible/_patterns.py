"""Run by tests.ansible.oracle in a subprocess: how Ansible's inventory plugins read host keys
(``parse_address`` then range expansion), and the ``ansible_*`` variables ansible-core knows."""

import json
import sys
import warnings

warnings.simplefilter("ignore")

from ansible import constants  # noqa: E402
from ansible.parsing.utils.addresses import parse_address  # noqa: E402
from ansible.plugins.inventory import detect_range, expand_hostname_range  # noqa: E402
from ansible.plugins.loader import (  # noqa: E402
    become_loader,
    connection_loader,
    init_plugin_loader,
    shell_loader,
)


def read(key: str) -> object:
    try:
        host, port = parse_address(key, allow_ranges=True)
    except Exception:
        host, port = key, None
    try:
        names = expand_hostname_range(host) if detect_range(host) else [host]
    except Exception:
        return "error"
    return [names, port] if names else "error"


def known() -> list[str]:
    init_plugin_loader()
    names = {n for spellings in constants.MAGIC_VARIABLE_MAPPING.values() for n in spellings}
    for kind, loader in (
        ("connection", connection_loader),
        ("become", become_loader),
        ("shell", shell_loader),
    ):
        for plugin in loader.all(class_only=True):
            names.update(constants.config.get_plugin_vars(kind, plugin._load_name))
    for definition in constants.config.get_configuration_definitions().values():
        names.update(v["name"] for v in definition.get("vars") or ())
    return sorted(n for n in names if n.startswith("ansible_"))


request = json.loads(sys.argv[1])
print(json.dumps({"keys": {k: read(k) for k in request}, "known": known()}))
