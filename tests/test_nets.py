"""The DPS networks: shapes, parameter counts, trainability, exact tiling, determinism."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dps_stages import nets
from dps_stages.nets.blocks import (
    DownProjection,
    Footprint,
    Reach,
    ResBlock,
    UpProjection,
)
from dps_stages.nets.resunet import ResUNet

# the DPS networks: local, tile-exact (OIDN and PSFNet have their own tests)
NAMES = ["denoise", "sim", "artifact", "resudbpn"]
CHANNELS = {"denoise": (9, 9), "sim": (9, 1), "artifact": (1, 1), "resudbpn": (1, 1)}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(name: str, **over) -> dict:
    """A tiny architecture of network ``name``: width 4, 2 levels, 1 block per stage."""
    arch = nets.default_arch(name)
    arch.update(width=4, depth=2, blocks=1)
    arch.update(over)
    return arch


def make(name: str, seed: int = 0, **over) -> nets.LocalNet:
    torch.manual_seed(seed)
    return nets.build(name, tiny(name, **over))


# --------------------------------------------------------------------------------- analytic


def conv_params(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def resblock_params(c: int) -> int:
    return 2 * conv_params(c, c, 3)


def channels(width: int, depth: int) -> list[int]:
    return [min(width * 2**i, 8 * width) for i in range(depth + 1)]


def resunet_params(cin: int, cout: int, width: int, depth: int, blocks: int, upscale: int) -> int:
    ch = channels(width, depth)
    n = conv_params(cin, ch[0], 3) + conv_params(ch[0], cout, 3)
    n += blocks * resblock_params(ch[depth])
    for i in range(depth):
        n += 2 * blocks * resblock_params(ch[i])  # encoder and decoder stages
        n += conv_params(ch[i], ch[i + 1], 2)  # strided down-sampling
        n += conv_params(ch[i + 1], ch[i], 2)  # transposed up-sampling
        n += conv_params(2 * ch[i], ch[i], 1)  # merge
    if upscale == 2:
        n += conv_params(ch[0], 4 * ch[0], 3)  # sub-pixel convolution
    return n


def projection_params(c: int) -> int:
    return 3 * conv_params(c, c, 6) + 3  # three 6x6 (transposed) convolutions, three PReLUs


def resudbpn_params(cin: int, width: int, depth: int, blocks: int) -> int:
    ch = channels(width, depth)
    n = conv_params(cin, ch[0], 3) + conv_params(ch[0], 1, 3)
    n += conv_params(ch[0], ch[0], 6) + 1  # 2x transposed head and its PReLU
    n += blocks * resblock_params(ch[depth])
    for i in range(depth):
        n += 2 * blocks * resblock_params(ch[i]) + 2 * projection_params(ch[i])
        n += conv_params(3 * ch[i], ch[i], 1)  # merge [U, F, E]
        if ch[i + 1] != ch[i]:
            n += conv_params(ch[i], ch[i + 1], 1) + conv_params(ch[i + 1], ch[i], 1)
    return n


def expected_params(name: str, arch: dict) -> int:
    w, d, b = arch["width"], arch["depth"], arch["blocks"]
    if name == "resudbpn":
        return resudbpn_params(arch["in_channels"], w, d, b)
    cin, cout = CHANNELS[name]
    if "frames" in arch:
        cin = arch["frames"]
        cout = cin if name == "denoise" else 1
    return resunet_params(cin, cout, w, d, b, upscale=2 if name == "sim" else 1)


# ----------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_attributes(name):
    net = make(name)
    cin, cout = CHANNELS[name]
    assert (net.in_channels, net.out_channels, net.multiple) == (cin, cout, 4)
    assert net.scale == (2 if name in ("sim", "resudbpn") else 1)
    x = torch.rand(2, cin, 32, 32)
    y = net(x)
    assert y.dtype == torch.float32
    assert y.shape == (2, cout, 32 * net.scale, 32 * net.scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_arch_rebuilds_the_network(name):
    net = make(name)
    arch = json.loads(json.dumps(net.arch))  # JSON-serialisable
    assert arch == tiny(name)
    again = type(net)(**arch)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    assert {k: v.shape for k, v in again.state_dict().items()} == shapes
    again.load_state_dict(net.state_dict())
    x = torch.rand(1, net.in_channels, 16, 16)
    assert torch.equal(again(x), net(x))


@pytest.mark.parametrize("name", NAMES)
def test_input_size_must_be_a_multiple(name):
    net = make(name)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, net.in_channels, 30, 32))
    with pytest.raises(ValueError, match="takes"):
        net(torch.rand(1, net.in_channels + 1, 32, 32))


def test_upscale_resunet_and_depth_zero():
    net = ResUNet(3, 2, width=4, depth=0, blocks=2, upscale=2)
    assert net.multiple == 1
    assert net(torch.rand(1, 3, 5, 7)).shape == (1, 2, 10, 14)
    with pytest.raises(ValueError, match="residual"):
        ResUNet(3, 2, residual=True)
    with pytest.raises(ValueError, match="upscale"):
        ResUNet(1, 1, upscale=3)


def test_no_normalisation_or_global_layers():
    banned = (
        nn.modules.batchnorm._BatchNorm,
        nn.modules.instancenorm._InstanceNorm,
        nn.GroupNorm,
        nn.LayerNorm,
        nn.AdaptiveAvgPool2d,
        nn.AdaptiveMaxPool2d,
    )
    for name in NAMES:
        with torch.device("meta"):
            net = nets.build(name, nets.paper_arch(name))
        assert not [m for m in net.modules() if isinstance(m, banned)], name


def test_projection_units_follow_the_equations():
    torch.manual_seed(0)
    up, down = UpProjection(3), DownProjection(3)
    low, high = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        h0 = up.up1(low)
        e_low = up.down(h0) - low
        h, e = up.project(low)
        torch.testing.assert_close(e, e_low)
        torch.testing.assert_close(h, h0 + up.up2(e_low))
        assert h.shape == high.shape
        l0 = down.down1(high)
        e_high = down.up(l0) - high
        low2, e = down.project(high)
        torch.testing.assert_close(e, e_high)
        torch.testing.assert_close(low2, l0 + down.down2(e_high))
        assert low2.shape == low.shape and e.shape == high.shape
        torch.testing.assert_close(down(high), low2)


def test_resblock_is_identity_plus_branch():
    torch.manual_seed(0)
    block = ResBlock(4)
    nn.init.zeros_(block.conv2.weight)
    nn.init.zeros_(block.conv2.bias)
    x = torch.randn(1, 4, 8, 8)
    assert torch.equal(block(x), x)


# ------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("c", [1, 3, 16])
def test_resblock_parameter_count(c):
    assert nets.count_parameters(ResBlock(c)) == 2 * (9 * c * c + c)
    assert nets.count_parameters(UpProjection(c)) == projection_params(c)
    assert nets.count_parameters(DownProjection(c)) == projection_params(c)


@pytest.mark.parametrize(
    "cin,cout,width,depth,blocks,upscale",
    [(1, 1, 4, 2, 1, 1), (9, 9, 3, 3, 2, 1), (9, 1, 4, 2, 1, 2), (2, 3, 2, 5, 0, 2)],
)
def test_resunet_parameter_count(cin, cout, width, depth, blocks, upscale):
    # depth 5 at width 2 caps the channels at 8 x width = 16
    net = ResUNet(cin, cout, width=width, depth=depth, blocks=blocks, upscale=upscale)
    assert nets.count_parameters(net) == resunet_params(cin, cout, width, depth, blocks, upscale)


@pytest.mark.parametrize("name", NAMES)
def test_network_parameter_counts(name):
    for arch in (tiny(name), nets.default_arch(name), tiny(name, depth=4, blocks=2)):
        with torch.device("meta"):
            net = nets.build(name, arch)
        assert nets.count_parameters(net) == expected_params(name, arch), arch


@pytest.mark.parametrize("name", NAMES)
def test_width_doubling_roughly_quadruples_parameters(name):
    with torch.device("meta"):
        n1 = nets.count_parameters(nets.build(name, tiny(name, width=8)))
        n2 = nets.count_parameters(nets.build(name, tiny(name, width=16)))
    assert 3.5 < n2 / n1 < 4.05


def test_paper_and_default_scale():
    counts = {}
    for name in NAMES:
        with torch.device("meta"):
            counts[name] = nets.count_parameters(nets.build(name, nets.paper_arch(name)))
        assert counts[name] == expected_params(name, nets.paper_arch(name))
        with torch.device("meta"):
            small = nets.count_parameters(nets.build(name, nets.default_arch(name)))
        assert small < 1_000_000 < counts[name]
    assert 10e6 < counts["resudbpn"] < 60e6  # Res-U-DBPN: tens of millions in the paper


def test_backbone_presets_keep_the_recorded_arch_order():
    """A network's own arguments, then the backbone's, then ``last``: the key order of the
    ``arch`` a model records (Res-U-DBPN's residual and positive come after the backbone)."""
    from dps_stages.nets.resunet import BACKBONE_PAPER, BACKBONE_SMALL, backbone_presets

    p = backbone_presets(in_channels=1, last={"residual": True})
    assert list(p["small"]) == ["in_channels", *BACKBONE_SMALL, "residual"]
    assert p["paper"] == {"in_channels": 1, **BACKBONE_PAPER, "residual": True}
    assert list(nets.default_arch("resudbpn")) == [
        "in_channels", "width", "depth", "blocks", "residual", "positive"
    ]  # fmt: skip
    assert backbone_presets(frames=9)["small"] == {"frames": 9, **BACKBONE_SMALL}


def test_registry():
    assert set(nets.NETWORKS) == {"denoise", "sim", "artifact", "resudbpn", "oidn", "psfid"}
    assert not nets.NETWORKS["oidn"].local and not nets.NETWORKS["psfid"].local
    for name in NAMES:
        arch = nets.default_arch(name)
        arch["width"] = -1  # a fresh dict each time
        assert nets.default_arch(name)["width"] > 0
        assert nets.build(name, nets.default_arch(name)).arch == nets.default_arch(name)
    with pytest.raises(KeyError, match="unknown network"):
        nets.build("unet3000", {})
    with pytest.raises(KeyError, match="unknown network"):
        nets.paper_arch("unet3000")
    assert getattr(nets.build("denoise"), "denormalise", False)
    assert not getattr(nets.build("sim"), "denormalise", False)


def test_same_seed_same_weights():
    for name in NAMES:
        a, b, c = make(name, seed=3), make(name, seed=3), make(name, seed=4)
        sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert not all(torch.equal(sa[k], sc[k]) for k in sa if sa[k].numel() > 1)


# --------------------------------------------------------------------------- trainability


def _blobs(n: int, seed: int) -> torch.Tensor:
    """A smooth test image: six Gaussian spots, maximum 1."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(n * 1.0), torch.arange(n * 1.0), indexing="ij")
    img = torch.zeros(n, n)
    for cy, cx in torch.rand(6, 2, generator=g) * n:
        img += torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (n / 10) ** 2))
    return img / img.max()


def _problem(name: str, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) of a tiny fixed task for network ``name``."""
    g = torch.Generator().manual_seed(1)
    if name == "denoise":  # 9 modulated frames plus Gaussian noise -> the clean frames
        obj = _blobs(n, 2)
        clean = torch.stack([obj * (1 + 0.5 * math.cos(2 * math.pi * k / 3)) for k in range(9)])
        clean = clean[None]
        return clean + 0.1 * torch.randn(clean.shape, generator=g), clean
    if name == "sim":  # 9 striped, 2x-binned frames -> the 2x object
        obj = _blobs(2 * n, 3)[None, None]
        binned = F.avg_pool2d(obj, 2)
        stripes = [1 + 0.8 * torch.cos(torch.arange(n) * 1.7 + k) for k in range(9)]
        return torch.cat([binned * s for s in stripes], dim=1), obj
    if name == "artifact":  # a clean image times a fine periodic artifact -> the clean image
        clean = _blobs(n, 4)[None, None]
        yy, xx = torch.arange(n)[:, None], torch.arange(n)[None]
        return clean * (1 + 0.2 * torch.cos(1.9 * xx + 0.7 * yy)), clean
    obj = _blobs(2 * n, 5)[None, None]  # resudbpn: blurred, 2x-binned -> the 2x object
    return F.avg_pool2d(F.avg_pool2d(obj, 3, 1, 1), 2), obj


@pytest.mark.parametrize("name", NAMES)
def test_loss_falls(name):
    net = make(name, width=8)
    x, target = _problem(name)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = F.mse_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


# ------------------------------------------------------------------------ receptive field


def test_footprint_of_single_layers():
    """The exact footprint against the dependency sets written out by hand."""
    conv = nn.Conv2d(1, 1, 6, stride=2, padding=2)
    convt = nn.ConvTranspose2d(1, 1, 6, stride=2, padding=2)
    # conv: output i reads 2i - 2 .. 2i + 3; an impulse at 10 reaches i = 4..6
    assert Footprint.impulse(32, 10).conv(conv).dep.nonzero()[0].tolist() == [4, 5, 6]
    # transposed: input i writes 2i - 2 .. 2i + 3; an impulse at 5 reaches 8..13
    assert Footprint.impulse(16, 5).conv_t(convt).dep.nonzero()[0].tolist() == list(range(8, 14))
    # the round trip: the interval bound [-5, 5] is reached only over both phases
    fp = [Footprint.impulse(32, q).conv(conv).conv_t(convt) for q in (10, 11)]
    assert [(f.dep.nonzero()[0] - q).tolist() for f, q in zip(fp, (10, 11), strict=True)] == [
        [-4, -3, -2, -1, 0, 1, 2, 3, 4, 5],
        [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4],
    ]
    r = Reach().conv(conv).conv_t(convt)
    assert (r.lo, r.hi, r.step) == (-5, 5, 1)


def test_footprint_of_a_tile_edge():
    """Outputs of a tile that read padding where the whole image has data are marked."""
    line = Footprint.tile(8)
    assert line.conv(nn.Conv2d(1, 1, 3, padding=1)).dep.nonzero()[0].tolist() == [0, 7]
    # 2x2 stride 2: cells do not overlap, nothing is lost at the edge
    assert not line.conv(nn.Conv2d(1, 1, 2, stride=2)).dep.any()
    assert not line.conv_t(nn.ConvTranspose2d(1, 1, 2, stride=2)).dep.any()
    # 6x6 stride 2 padding 2: inputs -1 and 8 would write to outputs 0, 1 and 14, 15
    up = line.conv_t(nn.ConvTranspose2d(1, 1, 6, stride=2, padding=2)).dep
    assert up.nonzero()[0].tolist() == [0, 1, 14, 15]


@pytest.mark.parametrize("name", NAMES)
def test_exact_radius_within_interval_bound(name):
    for arch in (nets.default_arch(name), nets.paper_arch(name)):
        with torch.device("meta"):
            net = nets.build(name, arch)
        m, exact, bound = net.multiple, net.receptive_radius(), net.reach().radius
        assert exact <= bound
        if name != "resudbpn":
            assert exact == bound  # no back-projection: the interval is exact
        halo = net.receptive_halo()
        assert halo % m == 0
        assert exact - m <= halo <= math.ceil(exact / m) * m


TILE_CASES = [(name, {}) for name in NAMES] + [
    ("resudbpn", {"in_channels": 2, "depth": 3, "width": 2, "blocks": 0})
]


def _tile_diff(net, x, whole, halo: int, rows: tuple[int, int], cols: tuple[int, int]) -> float:
    """Largest difference between the whole-image output and a tile's, ``halo`` inside."""
    s = net.scale
    (y0, y1), (x0, x1) = rows, cols
    with torch.no_grad():
        tile = net(x[..., y0:y1, x0:x1])
    a, b = (y0 + halo) * s, (y1 - halo) * s
    c, d = (x0 + halo) * s, (x1 - halo) * s
    inner = tile[..., a - y0 * s : b - y0 * s, c - x0 * s : d - x0 * s]
    return (whole[..., a:b, c:d] - inner).abs().max().item()


@pytest.mark.parametrize("name,over", TILE_CASES)
def test_tiles_with_the_halo_equal_the_whole_image(name, over):
    net = make(name, **over).double()
    m, halo = net.multiple, net.receptive_halo()
    # a tile strictly inside the image on all four sides, origins on the multiple grid
    rows = (2 * m, 2 * m + 2 * halo + 4 * m)
    cols = (m, m + 2 * halo + 3 * m)
    n = rows[1] + 2 * m
    x = torch.rand(1, net.in_channels, n, n, dtype=torch.float64, generator=torch.manual_seed(5))
    with torch.no_grad():
        whole = net(x)
    assert _tile_diff(net, x, whole, halo, rows, cols) < 1e-12
    # one grid step less is not enough: the halo is as small as it can be (the differences
    # at the fringe are small, down to 1e-16 for Res-U-DBPN, but not zero)
    assert _tile_diff(net, x, whole, halo - m, rows, cols) > 0
    # and in float32, where the kernels may round differently on different sizes
    net, x = net.float(), x.float()
    with torch.no_grad():
        whole = net(x)
    assert _tile_diff(net, x, whole, halo, rows, cols) < 1e-5


@pytest.mark.parametrize("name,over", TILE_CASES)
def test_receptive_radius_is_honest(name, over):
    """A changed input pixel changes no output farther than the radius, and some at it."""
    if name == "resudbpn":  # the output ReLU would stop gradients where it clips
        over = over | {"positive": False}
    net = make(name, **over).double()
    s, m, radius = net.scale, net.multiple, net.receptive_radius()
    n = 2 * math.ceil(radius / m + 2) * m
    g = torch.manual_seed(6)
    x = torch.rand(1, net.in_channels, n, n, dtype=torch.float64, generator=g)
    q = (n // 2 + 1, n // 2 + m - 1)
    x2 = x.clone()
    x2[..., q[0], q[1]] += 1.0
    with torch.no_grad():
        changed = (net(x2) != net(x)).any(dim=1)[0]
    oy, ox = torch.meshgrid(torch.arange(n * s), torch.arange(n * s), indexing="ij")
    dist = torch.maximum((oy / s - q[0]).abs(), (ox / s - q[1]).abs())
    assert changed.any()
    assert not (changed & (dist > radius)).any()  # bit-identical beyond the radius
    # the farthest dependency over one period of output rows is the radius itself. A narrow
    # strip in x suffices: every layer reads the pixel below its anchor in x as well, so the
    # paths that set the reach along y need no room along x
    x = x[..., : 2 * m].clone().requires_grad_(True)
    y = net(x)
    far = 0.0
    for row in range(n * s // 2, n * s // 2 + m * s):
        (grad,) = torch.autograd.grad(y[0, :, row, y.shape[-1] // 2].sum(), x, retain_graph=True)
        rows = grad.abs().amax(dim=(0, 1, 3)).nonzero()[:, 0].double()
        far = max(far, (rows - row / s).abs().max().item())
    assert far == radius


def test_resudbpn_output_is_non_negative():
    """Intensities are non-negative: the output ReLU holds for any input, even a negative one."""
    net = make("resudbpn")
    x = torch.randn(1, 1, 16, 16, generator=torch.manual_seed(3)) - 0.5
    with torch.no_grad():
        assert (net(x) >= 0).all()
        unconstrained = make("resudbpn", positive=False)(x)
    assert (unconstrained < 0).any()  # what the constraint is there for


def test_registry_is_the_one_list_of_names():
    """Every list of network names derives from the registry; ids are unique seeds."""
    from dps_stages import chain, training
    from dps_stages.cli import nets as cli_nets
    from dps_stages.nets import registry

    names = registry.NAMES
    assert tuple(nets.NETWORKS) == names == cli_nets.NETS == tuple(training.NET_IDS)
    assert len(set(registry.NET_IDS.values())) == len(names)
    assert training.SIM_NETWORKS == chain._sim_networks() == {"dps": "sim", "oidn": "oidn"}
    for name, spec in registry.REGISTRY.items():
        assert spec.name == name and nets.build(name, spec.arch()).arch == spec.arch()
        assert spec.tiles == (name not in ("oidn", "psfid"))  # global networks do not tile
        assert {m: registry.MODELS[m] for m in spec.variants} == dict.fromkeys(spec.variants, name)
        # the loss of the spec takes exactly its own terms
        assert len({t.key for t in spec.loss_terms}) == len(spec.loss_terms) > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.REGISTRY["denoise"].id = 9


def test_schema_network_blocks_are_the_registry():
    """config.schema.yaml's `networks.<net>` blocks are generated from the specs: each
    accepts its own loss terms only, with the spec's defaults."""
    import jsonschema
    import yaml

    from dps_stages.nets.registry import REGISTRY, SIM_NETWORKS, network_schema

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    networks = schema["properties"]["networks"]["properties"]
    for name, spec in REGISTRY.items():
        assert networks[name]["$ref"] == f"#/$defs/net_{name}"
        assert schema["$defs"][f"net_{name}"] == network_schema(spec)
        loss = schema["$defs"][f"net_{name}"]["properties"]["loss"]["properties"]
        assert {k: v["default"] for k, v in loss.items()} == spec.loss_defaults()
    assert set(networks["sim_method"]["enum"]) == {"wiener", *SIM_NETWORKS}

    def valid(block: dict, net: str = "denoise", **shared) -> bool:
        config = {"datasets": {"a": {"source": "simulate"}}, "networks": {net: block, **shared}}
        try:
            jsonschema.validate(config, schema)
        except jsonschema.ValidationError:
            return False
        return True

    assert valid({"loss": {"fft": 0.2}})
    assert not valid({"loss": {"perceptual": 1.0}})  # not a denoise term
    assert valid({"loss": {"perceptual": 1.0}}, "artifact")
    assert valid({"theta_max": 0.1}, "psfid") and not valid({"theta_max": 0.1})
    assert not valid({"steps": 0}) and not valid({"lr": 0}) and not valid({"width": 0})
    assert not valid({"loss": {"w": 1.5}}, "oidn")
    for device, ok in (("auto", True), ("cpu", True), ("cuda", True), ("cuda:1", True),
                       ("bogus", False), ("cuda:x", False), ("cpu;touch x", False)):  # fmt: skip
        assert valid({}, device=device) is ok, device
