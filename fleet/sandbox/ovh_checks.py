"""What the fake OVH API refuses, and how: error answers and request checks.

:class:`OvhApiError` is an error answer (HTTP status, OVH error class, message); the HTTP layer
renders it in the configured body shape. The checks follow OVH's models: the keys
``PUT /dedicated/server/{sn}`` accepts and their types, and the ``dedicated.server.Reinstall``
body, checked loosely (keys, types and enums), as OVH's API layer does before anything changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

Json = dict[str, Any]

SERVER_STATES = frozenset({"error", "hacked", "hackedBlocked", "ok"})

#: The keys ``PUT /dedicated/server/{sn}`` accepts; every other field is read-only.
WRITABLE_KEYS = frozenset(
    [
        "bootId",
        "bootScript",
        "efiBootloaderPath",
        "monitoring",
        "noIntervention",
        "rescueMail",
        "rescueSshKey",
        "rootDevice",
        "state",
    ]
)
READ_ONLY_KEYS = frozenset(
    [
        "availabilityZone",
        "commercialRange",
        "datacenter",
        "iam",
        "ip",
        "linkSpeed",
        "name",
        "newUpgradeSystem",
        "os",
        "powerState",
        "professionalUse",
        "rack",
        "region",
        "reverse",
        "serverId",
        "supportLevel",
    ]
)
_NULLABLE_TEXT = frozenset(
    {"bootScript", "efiBootloaderPath", "rescueMail", "rescueSshKey", "rootDevice"}
)


class OvhApiError(Exception):
    """An error answer: HTTP status, OVH error class and message (rendered by the HTTP layer)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_class: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_class = error_class
        self.details = details or {}


def not_found(what: str, value: object) -> OvhApiError:
    return OvhApiError(
        404,
        f"The requested object ({what} = {value}) does not exist",
        error_class="Client::NotFound",
        details={what: str(value)},
    )


def bad_request(message: str, *, error_class: str = "Client::BadRequest") -> OvhApiError:
    return OvhApiError(400, message, error_class=error_class)


def check_writable(key: str, value: Any) -> Any:
    """Type-check one PUT value, as OVH's API layer does before anything changes."""
    if key == "bootId":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"Invalid value for property bootId: {value!r} is not a long")
    elif key in ("monitoring", "noIntervention"):
        if not isinstance(value, bool):
            raise bad_request(f"Invalid value for property {key}: {value!r} is not a boolean")
    elif key == "state":
        if value not in SERVER_STATES:
            raise bad_request(f"Invalid value for property state: {value!r} is not in the enum")
    elif key in _NULLABLE_TEXT and value is not None and not isinstance(value, str):
        raise bad_request(f"Invalid value for property {key}: {value!r} is not a string")
    return value


_REINSTALL_KEYS = frozenset({"operatingSystem", "customizations", "storage", "properties"})
_CUSTOMIZATION_ENUMS = {
    "imageCheckSumType": frozenset({"md5", "sha1", "sha256", "sha512"}),
    "imageType": frozenset({"qcow2", "raw"}),
    "language": frozenset(
        {"cs-cz", "de-de", "en-us", "es-es", "fr-fr", "it-it", "nl-nl", "pl-pl", "pt-pt"}
    ),
    "postInstallationScriptExtension": frozenset({"cmd", "ps1"}),
}
_CUSTOMIZATION_MAPS = frozenset({"configDriveMetadata", "httpHeaders", "nutanixConfiguration"})
_CUSTOMIZATION_TEXT = frozenset(
    {
        "configDriveUserData",
        "efiBootloaderPath",
        "hostname",
        "imageCheckSum",
        "imageURL",
        "postInstallationScript",
        "sshKey",
    }
)
_STORAGE_KEYS = frozenset({"diskGroupId", "hardwareRaid", "partitioning"})
_PARTITIONING_KEYS = frozenset({"disks", "layout", "schemeName"})
_LAYOUT_KEYS = frozenset({"extras", "fileSystem", "mountPoint", "raidLevel", "size"})
_HARDWARE_RAID_KEYS = frozenset({"arrays", "disks", "raidLevel", "spares"})
_FILE_SYSTEMS = frozenset(
    {"btrfs", "ext3", "ext4", "fat16", "none", "ntfs", "reiserfs", "swap", "ufs"}
    | {"vmfs5", "vmfs6", "vmfsl", "xfs", "zfs"}
)
_SOFT_RAID_LEVELS = frozenset({0, 1, 5, 6, 7, 10})


def _object(value: Any, where: str, allowed: frozenset[str]) -> Json:
    if not isinstance(value, dict):
        raise bad_request(f"{where}: expected a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise bad_request(f"{where}: unknown parameter {unknown[0]}")
    return value


def _string_map(value: Any, where: str) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(
            f"{where}: expected a map of strings",
            error_class="Client::BadRequest::CustomizationInvalidFormat",
        )


def validate_reinstall(
    body: Any, templates: Sequence[str], groups: Sequence[int], name: str
) -> Json:
    """Check a ``dedicated.server.Reinstall`` body loosely: keys, types and enums."""
    request = _object(body, "body", _REINSTALL_KEYS)
    system = request.get("operatingSystem")
    if not isinstance(system, str) or not system:
        raise bad_request("Missing parameter operatingSystem")
    if system not in templates:
        raise bad_request(f"Operating system {system} is not compatible with server {name}")
    if "customizations" in request:
        _check_customizations(request["customizations"])
    if "properties" in request:
        _string_map(request["properties"], "properties")
    storage = request.get("storage", [])
    if not isinstance(storage, list):
        raise bad_request("storage: expected a list")
    if len(storage) > 1:
        raise OvhApiError(
            501,
            f"Multiple ({len(storage)}) disk groups customization not implemented",
            error_class="Server::NotImplemented::DiskGroupMultipleConfigs",
        )
    for item in storage:
        _check_storage(item, groups, name)
    return request


def _check_customizations(value: Any) -> None:
    allowed = _CUSTOMIZATION_TEXT | _CUSTOMIZATION_MAPS | set(_CUSTOMIZATION_ENUMS)
    custom = _object(value, "customizations", allowed | {"enableLacpBonding"})
    for key, item in custom.items():
        where = f"customizations.{key}"
        if key in _CUSTOMIZATION_MAPS:
            _string_map(item, where)
        elif key in _CUSTOMIZATION_ENUMS and item not in _CUSTOMIZATION_ENUMS[key]:
            raise bad_request(f"{where}: {item!r} is not in the enum")
        elif key == "enableLacpBonding" and not isinstance(item, bool):
            raise bad_request(f"{where}: expected a boolean")
        elif key in _CUSTOMIZATION_TEXT and not isinstance(item, str):
            raise bad_request(
                f"{where}: expected a string",
                error_class="Client::BadRequest::CustomizationInvalidFormat",
            )


def _check_storage(value: Any, groups: Sequence[int], name: str) -> None:
    storage = _object(value, "storage[]", _STORAGE_KEYS)
    group = storage.get("diskGroupId")
    if group not in (None, 0, *groups):
        raise OvhApiError(
            404,
            f"Disk group {group} could not be found on server {name}",
            error_class="Client::NotFound::DiskGroup",
        )
    raids = storage.get("hardwareRaid", [])
    if not isinstance(raids, list):
        raise bad_request("storage[].hardwareRaid: expected a list")
    for raid in raids:
        _object(raid, "storage[].hardwareRaid[]", _HARDWARE_RAID_KEYS)
    if "partitioning" in storage:
        partitioning = _object(
            storage["partitioning"], "storage[].partitioning", _PARTITIONING_KEYS
        )
        layout = partitioning.get("layout", [])
        if not isinstance(layout, list):
            raise bad_request("storage[].partitioning.layout: expected a list")
        for part in layout:
            _check_partition(part)


def _check_partition(value: Any) -> None:
    part = _object(value, "storage[].partitioning.layout[]", _LAYOUT_KEYS)
    if part.get("fileSystem") not in _FILE_SYSTEMS:
        raise bad_request(f"layout: fileSystem {part.get('fileSystem')!r} is not in the enum")
    if not isinstance(part.get("mountPoint"), str):
        raise bad_request("layout: mountPoint is required")
    if part.get("raidLevel") not in (None, *_SOFT_RAID_LEVELS):
        raise bad_request(f"layout: raidLevel {part.get('raidLevel')!r} is not in the enum")
    size = part.get("size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad_request(f"layout: size {size!r} must be a number of MiB >= 0")
