"""Vision beyond classification (htc_dl.vision_plus, nbs/lessons/06f_beyond_classification.ipynb):
the offline CamVid-tiny copy has the real layout with exact masks, the loader is clear about
sources, IoU counts what it should, the adapted first convolution keeps the pretrained filters, the
drawn tiles hide their signal in infrared, and fastai's `unet_learner` builds a U-Net with skips at
four scales on the offline body."""
import numpy as np
import pytest
import torch
from PIL import Image

from htc_dl.data import camvid_tiny
from htc_dl.offline import CAMVID_CODES, CAMVID_SIZE, DRAWN_CLASSES, draw_street
from htc_dl.vision_data import BANDS, TILE_CLASSES, band_tiles, draw_tile
from htc_dl.vision_plus import adapt_first_conv, band_dls, lite0_encoder, per_class_iou


@pytest.fixture(scope="module")
def camvid():
    return camvid_tiny(source="offline", size="small")


def test_offline_camvid_tiny_has_codes_txt_and_one_mask_per_photo_with_the_real_names(camvid):
    assert ((camvid/"codes.txt").read_text().split() == list(CAMVID_CODES)
            and len(CAMVID_CODES) == 32)
    photos = sorted((camvid/"images").glob("*.png"))
    assert len(photos) == 100
    for photo in photos[:10]:
        mask = Image.open(camvid/"labels"/f"{photo.stem}_P.png")
        assert mask.mode == "L" and mask.size == Image.open(photo).size == CAMVID_SIZE


def test_masks_hold_every_drawn_class_and_void_only_as_a_thin_rim(camvid):
    masks = np.stack([np.asarray(Image.open(f)) for f in sorted((camvid/"labels").glob("*_P.png"))])
    counts = np.bincount(masks.ravel(), minlength=len(CAMVID_CODES))
    present = {CAMVID_CODES[i] for i in np.flatnonzero(counts)}
    assert present == {*DRAWN_CLASSES, "Void"}
    assert 0.005 < counts[CAMVID_CODES.index("Void")] / masks.size < 0.05
    # people are big enough to segment
    assert counts[CAMVID_CODES.index("Pedestrian")] / masks.size > 0.01


def test_the_mask_is_drawn_with_the_photo_so_a_car_pixel_looks_like_a_car():
    img, mask = draw_street(np.random.default_rng(1))
    img, mask = np.asarray(img, float), np.asarray(mask)
    sky, road = (img[mask == CAMVID_CODES.index("Sky")].mean(0),
                 img[mask == CAMVID_CODES.index("Road")].mean(0))
    assert sky[2] > sky[0] + 30                  # sky is blue
    assert road.max() < 110                      # road is dark grey


def test_online_source_without_network_says_how_to_go_on():
    with pytest.raises(ConnectionError, match="source='offline'"):
        camvid_tiny(source="online")
    with pytest.raises(ValueError, match="'auto', 'online' or 'offline'"):
        camvid_tiny(source="web")


def test_iou_is_intersection_over_union_per_class_and_void_pixels_count_for_nothing():
    truth = torch.tensor([[[5, 5, 17, 17], [5, 30, 17, 17]]])
    pred = torch.tensor([[[5, 17, 17, 17], [5, 17, 17, 5]]])
    ious = per_class_iou(pred, truth, CAMVID_CODES, ignore=CAMVID_CODES.index("Void"))
    assert ious == pytest.approx({"Car": 2 / 4, "Road": 3 / 5})
    # scores work as well as class numbers
    scores = torch.nn.functional.one_hot(pred, 32).permute(0, 3, 1, 2).float()
    assert per_class_iou(scores, truth, CAMVID_CODES, ignore=30) == ious
    with pytest.raises(ValueError, match="differ in size"):
        per_class_iou(pred[..., :2], truth, CAMVID_CODES)


def test_adapted_first_conv_keeps_rgb_filters_and_starts_other_bands_from_their_mean():
    torch.manual_seed(0)
    rgb = torch.nn.Conv2d(3, 8, 3, 2, 1, bias=False)
    four = adapt_first_conv(rgb, BANDS)
    assert four.weight.shape == (8, 4, 3, 3)
    torch.testing.assert_close(four.weight[:, :3], rgb.weight)
    torch.testing.assert_close(four.weight[:, 3], rgb.weight.mean(1))
    two = adapt_first_conv(rgb, ("red", "infrared"))
    torch.testing.assert_close(two.weight[:, 0], rgb.weight[:, 0])
    torch.testing.assert_close(two.weight[:, 1], rgb.weight.mean(1))
    # a grey picture: the infrared channel sees what the RGB filters would see in it
    x = torch.rand(1, 3, 16, 16)
    grey = x.mean(1, keepdim=True)
    torch.testing.assert_close(adapt_first_conv(rgb, ("infrared",))(grey),
                               rgb(grey.expand(-1, 3, -1, -1)) / 3, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="3 input channels"):
        adapt_first_conv(four, BANDS)


def test_healthy_and_stressed_tiles_look_alike_in_rgb_and_differ_in_infrared():
    rng = np.random.default_rng(0)
    means = {c: np.stack([draw_tile(c, rng).reshape(4, -1).mean(1) for _ in range(30)]).mean(0)
             for c in TILE_CLASSES}
    assert np.abs(means["healthy_crop"][:3] - means["stressed_crop"][:3]).max() < 8
    assert means["healthy_crop"][3] - means["stressed_crop"][3] > 80
    assert means["bare_ground"][0] - means["healthy_crop"][0] > 50   # bare ground is visible in red


def test_band_dls_gives_batches_with_one_channel_per_band_normalised():
    dls = band_dls(band_tiles("small"), ("red", "infrared"), bs=16)
    x, y = dls.one_batch()
    assert x.shape == (16, 2, 64, 64) and set(dls.vocab) == set(TILE_CLASSES)
    assert x.mean().abs() < 0.5 and 0.5 < x.std() < 1.5
    with pytest.raises(ValueError, match="unknown bands.*red, green, blue, infrared"):
        band_dls(band_tiles("small"), ("red", "ultraviolet"))


def test_unet_learner_builds_on_the_offline_body_with_skips_at_four_scales(camvid):
    from fastai.vision.all import (SegmentationDataLoaders, get_image_files, unet_learner,
                                   model_sizes)
    from fastai.vision.models.unet import _get_sz_change_idxs
    from htc_dl.vision_plus import register_lite0_for_unet
    register_lite0_for_unet()
    dls = SegmentationDataLoaders.from_label_func(
        camvid, bs=4, fnames=get_image_files(camvid/"images")[:12], codes=CAMVID_CODES,
        label_func=lambda o: camvid/"labels"/f"{o.stem}_P{o.suffix}", num_workers=0)
    learn = unet_learner(dls, lite0_encoder, last_cross=False)
    x, _ = dls.one_batch()
    with torch.no_grad(): out = learn.model.eval()(x)
    assert out.shape == (4, 32, 96, 128)
    sizes = model_sizes(learn.model[0], size=(96, 128))
    assert [96 // sizes[i][2] for i in _get_sz_change_idxs(sizes)] == [2, 4, 8, 16]
    # model_meta's ImageNet stats were applied
    assert any(type(t).__name__ == "Normalize" for t in dls.after_batch)
    from htc_dl.pretrained import lite0_checkpoint
    from safetensors.torch import load_file
    # the body is pretrained
    torch.testing.assert_close(learn.model[0][0].weight,
                               load_file(lite0_checkpoint())["conv_stem.weight"])


def test_band_learner_trains_its_new_first_layer():
    from fastai.vision.all import error_rate
    from htc_dl.vision_plus import band_learner
    bands = ("red", "infrared")
    learn = band_learner(band_dls(band_tiles("small"), bands, bs=8), bands, metrics=error_rate)
    stem = learn.model[0].model.conv_stem
    # the optimiser knows the new layer
    assert stem.in_channels == 2 and any(p is stem.weight for g in learn.opt.param_lists for p in g)
    before = stem.weight.detach().clone()
    learn.unfreeze()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[])
    assert (stem.weight.detach() - before).abs().max() > 1e-4              # and training changes it


def test_an_epoch_at_half_size_costs_well_under_one_at_full_size_so_progressive_resizing_saves_time(
        camvid, one_torch_thread):
    """Lesson 6f counts the pixels each schedule trains on; this measures that fewer pixels really
    take less CPU time."""
    import time
    from fastai.vision.all import Resize, SegmentationDataLoaders, get_image_files, unet_learner
    from htc_dl.vision_plus import register_lite0_for_unet
    register_lite0_for_unet()
    def dls(size=None):
        return SegmentationDataLoaders.from_label_func(
            camvid, bs=4, fnames=get_image_files(camvid/"images")[:24], codes=CAMVID_CODES,
            num_workers=0, label_func=lambda o: camvid/"labels"/f"{o.stem}_P{o.suffix}",
            item_tfms=Resize(size) if size else None)
    half_size, full_size = dls((48, 64)), dls()
    learn = unet_learner(half_size, lite0_encoder, last_cross=False)
    def epoch_cpu_seconds(data):
        learn.dls = data
        start = time.process_time()
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        return time.process_time() - start
    epoch_cpu_seconds(half_size)   # the first epoch also pays for setting up
    half, full = epoch_cpu_seconds(half_size), epoch_cpu_seconds(full_size)
    assert half < 0.6 * full, (half, full)
