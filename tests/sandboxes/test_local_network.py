"""The decisions behind a local sandbox's network (sandboxes/backends/local_network.py), called directly."""

from sandboxes.backends.local_network import (
    Allowed,
    NetworkPlan,
    control_plane_route,
    networks_of,
    nft_rules,
    pasta_argv,
    port_inside,
    resolvers,
)


def test_only_the_control_planes_port_and_the_services_ports_are_forwarded():
    argv = pasta_argv(NetworkPlan(control_plane_port=8310, inbound={3000: 41001, 40000: 41002}))
    # pasta forwards every bound port in both directions unless told otherwise ("auto").
    assert argv[argv.index("--udp-ports") + 1] == "none" and argv[argv.index("--udp-ns") + 1] == "none"
    assert argv[argv.index("--tcp-ns") + 1] == "8310:8310"
    moved = pasta_argv(NetworkPlan(control_plane_port=8000, control_plane_inside=40100))
    assert moved[moved.index("--tcp-ns") + 1] == "40100:8000"
    inbound = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--tcp-ports"]
    assert inbound == ["127.0.0.1/41001:3000", "127.0.0.1/41002:40000"]
    assert "--no-map-gw" in argv  # the gateway address would reach the host's loopback
    bare = pasta_argv(NetworkPlan())
    assert bare[bare.index("--tcp-ports") + 1] == "none" and bare[bare.index("--tcp-ns") + 1] == "none"


def test_the_control_plane_is_forwarded_on_loopback_and_let_through_on_a_private_address():
    assert control_plane_route("http://127.0.0.1:8310") == (8310, ())
    assert control_plane_route("http://localhost") == (80, ())
    assert control_plane_route("http://10.1.2.3:8000/") == (None, (Allowed("10.1.2.3", 8000),))
    assert control_plane_route("https://inspect.example.com") == (None, ())


def test_the_walls_refuse_private_ranges_but_let_the_resolver_through():
    rules = nft_rules((Allowed("10.255.255.53", 53, ("udp", "tcp")),))
    assert "ip daddr 10.255.255.53 udp dport 53 accept" in rules
    assert "ip daddr 10.255.255.53 tcp dport 53 accept" in rules
    assert rules.index("10.255.255.53 udp") < rules.index("reject")  # accepted before the ranges are refused
    for private in ("10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"):
        assert private in rules


def test_resolvers_are_read_from_resolv_conf():
    text = "# comment\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nsearch example.com\nnameserver bogus\n"
    assert resolvers(text) == ["10.255.255.53", "fe80::1"]


def test_the_control_plane_moves_aside_inside_only_for_a_service_on_its_port():
    assert port_inside(8310, [3000, 40000]) == 8310
    assert port_inside(8000, [8000, 40000]) == 40100
    assert port_inside(8000, [8000, 40100]) == 40101
    assert port_inside(None, [8000]) is None


def test_the_hosts_own_networks_are_refused_but_its_loopback_is_not():
    loopback = [{"local": "127.0.0.1", "prefixlen": 8}, {"local": "::1", "prefixlen": 128}]
    listed = [{"ifname": "lo", "addr_info": loopback},
              {"ifname": "eth0", "addr_info": [{"local": "203.0.113.7", "prefixlen": 24},
                                               {"local": "2001:db8:1::7", "prefixlen": 64}]}]
    networks = networks_of(listed)
    assert networks == ("203.0.113.0/24", "2001:db8:1::/64")
    rules = nft_rules((), networks)
    assert "203.0.113.0/24" in rules and "2001:db8:1::/64" in rules and "127.0.0.0/8" not in rules
    for translator in ("64:ff9b::/96", "2002::/16"):  # NAT64 and 6to4 lead back into IPv4
        assert translator in rules
