"""Real pretrained MobileNetV2 weights, loaded offline, on a real photo."""

from helpers import assets, models


def test_chelsea_is_a_cat(monkeypatch):
    monkeypatch.setenv("EVW_OFFLINE", "1")
    model = models.mobilenet_v2()
    top = models.classify(model, assets.load_image("photo_chelsea"), top=5)
    index, label, prob = top[0]
    assert 281 <= index <= 285, f"top-1 was {index} {label}"  # ImageNet's domestic cats
    assert prob > 0.3
    assert sum(p for _, _, p in top) <= 1.0 + 1e-6
    assert len(models.imagenet_categories()) == 1000
