"""Run first inside a local sandbox's network namespace (see local_network.py), as the namespace's root:
applies the firewall, closes the descriptors pasta leaves open (its listening sockets on the host's side),
then becomes the given command. Standalone on purpose: it runs under the system's python3, without Django.

usage: local_walls.py NFT_RULES -- COMMAND...
"""

import os
import subprocess
import sys


def main() -> None:
    rules, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        sys.exit("usage: local_walls.py NFT_RULES -- COMMAND...")
    nft = "/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else "nft"
    applied = subprocess.run([nft, rules], capture_output=True)
    if applied.returncode != 0:
        sys.exit("the sandbox's firewall could not be set up: " + applied.stderr.decode(errors="replace"))
    os.closerange(3, 65536)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
