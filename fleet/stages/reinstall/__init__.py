"""``reinstall`` stages: reinstalling a server's OS through the OVH API.

The package: :mod:`~fleet.stages.reinstall.spec` (the stage's params), :mod:`.request` (the
request for one server and its checks), :mod:`.approval` (confirmation and approval),
:mod:`.task` (this run's task: adopt, resume, progress), :mod:`.identity` (host keys and the
new system's identity) and :mod:`.stage` (the stage itself).

A reinstall wipes the system disks, so nothing is sent before the request is shown to work on
that very server: the OS must be one of its ``install/compatibleTemplates``, storage goes to its
system disk group only (the NVMe/SSD group, never the HDD group of a hybrid server: fleet always
names the group, so OVH's default group can never be the HDD one), and RAID levels must fit the
disks used. A request that cannot work raises :class:`ReinstallRefused`, naming the host and the
field, and nothing is changed (only GETs were made).

Params of a ``kind: reinstall`` stage (``fleet reinstall`` builds the same stage)::

    os: debian12_64                   # required: one of the server's compatible templates
    hostname: "{name}.example.net"    # {name}: inventory name, {service}: OVH service name
    ssh_key: ssh-ed25519 AAAA... op   # installed for root; default: rescue.ssh_public_key
    script_file: /srv/post-install.sh # post-installation script, sent base64-encoded
    script_sha256: 3b1f...            # refuse the script if it changed since the run started
    disk_group: 1                     # default: the system (NVMe/SSD) group
    disks: 2                          # disks of that group to use (default: all)
    raid: 1                           # software RAID of the layout's partitions
    layout: ["/boot:ext4:1024", "/:ext4:0", "swap:swap:4096"]   # MOUNT:FS:SIZE_MIB[:RAID]
    scheme: default                   # OVH partitioning scheme name

The script is read from its file on the controller when the stage runs, so its text (which may
hold secrets) never enters the store; only its path and hash do.

Approval: a run reinstalls a host only if its record lists the host under the option
``approve_reinstall`` (set by ``fleet reinstall --confirm`` or ``fleet rollout
--approve-reinstall``); a run started any other way is refused per host.

Resume: before its POST the stage journals the ids of the server's existing reinstall tasks, and
after it the id of the task it started or adopted. A later attempt of the same run (a resume
after a crash) adopts that task rather than starting another: still running, it is waited for;
done, the stage goes on with what follows the install. A task that failed is started anew only
by a later attempt (``fleet resume``, a person's decision), never by the automatic retries of
the attempt that saw it fail.
"""
