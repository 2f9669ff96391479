"""The decisions behind a local sandbox's network (sandboxes/backends/local_network.py), called directly."""

from sandboxes.backends.local_network import Allowed, NetworkPlan, control_plane_route, nft_rules, pasta_argv, resolvers


def test_only_the_control_planes_port_and_the_services_ports_are_forwarded():
    argv = pasta_argv(NetworkPlan(control_plane_port=8310, inbound={3000: 41001, 40000: 41002}))
    # pasta forwards every bound port in both directions unless told otherwise ("auto").
    assert argv[argv.index("--udp-ports") + 1] == "none" and argv[argv.index("--udp-ns") + 1] == "none"
    assert argv[argv.index("--tcp-ns") + 1] == "8310"
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
