#!/bin/sh
# Lists corpus rulesets as the collector reads them (see README.md). Needs root; it changes
# nothing outside the network namespace it creates with unshare (gone when it exits).
set -eu
cd "$(dirname "$0")"
list() {  # list NAME CORPUS-FILE... [-- NFT-COMMAND (a change, run after loading)]
    name=$1; shift
    files=""; fault=""
    while [ $# -gt 0 ]; do
        if [ "$1" = "--" ]; then shift; fault="nft $*"; break; fi
        files="$files ../$1.nft"; shift
    done
    unshare -n sh -c "ip link add eth0 type veth peer name eth0peer; ip link add docker0 type bridge;
        ip link add bridge1 type bridge;
        for f in $files; do nft -f \$f; done
        $fault
        nft -j list ruleset > $name.json; nft -a list ruleset > $name.txt"
}
list docker29-usernet-portmap docker29-usernet-portmap
list docker29-usernet-portmap+archlinux-default docker29-usernet-portmap archlinux-default
# Docker 29's isolation of bridge1 lost (a partial firewall reload flushed its chain)
list docker29-usernet-portmap+flushed-forward-in docker29-usernet-portmap -- \
    flush chain ip docker-bridges filter-forward-in__bridge1
list archlinux-default archlinux-default
# Arch's forward chain letting the bridges through by a wildcard (no rule spells `bridge1`)
list archlinux-default+bridge-wildcard archlinux-default -- \
    add rule inet filter forward iifname 'bridge\*' accept
