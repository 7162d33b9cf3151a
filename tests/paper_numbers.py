"""The numbers the paper and the original README report, with what is verified, typed by hand
from the reference (../shared/reference/original-system.md, section 6), independently of the
recipe files: the tests hold the recipes and `cnn3d reproduce` to it."""

VERIFIED, RECALLED = "verified", "recalled, unverified"
ONE_RUN, SPLIT_MEAN, TEST_SET = "", "mean of 3 splits", "test set"

# the original README: the average of top-1 and top-5 on Kinetics-400 val (verified)
README_AVERAGE = {
    "resnet-18": 66.1, "resnet-34": 71.0, "resnet-50": 72.2, "resnet-101": 73.3,
    "resnet-152": 73.7, "resnet-200": 73.7, "preresnet-200": 73.4, "wideresnet-50": 74.7,
    "resnext-101": 75.4, "densenet-121": 70.8, "densenet-201": 72.3,
}  # fmt: skip
# the paper's Kinetics-400 val table as recalled (top-1, top-5): never to be shown as verified
RECALLED_TOP1_TOP5 = {
    "resnet-18": (54.2, 78.1), "resnet-34": (60.1, 81.9), "resnet-50": (61.3, 83.1),
    "resnet-101": (62.8, 83.9), "resnet-152": (63.0, 84.4), "resnet-200": (63.1, 84.4),
    "wideresnet-50": (64.1, 85.3), "resnext-101": (65.1, 85.7), "densenet-121": (59.7, 81.9),
    "densenet-201": (61.3, 83.3),
}  # fmt: skip
# the authors' poster, "Comparisons with SOTA on Kinetics": average of top-1 and top-5 on the
# Kinetics *test* set (verified); the abstract's 78.4 is the 64-frame model
TEST_SET_AVERAGE = {"resnext-101": 74.5, "resnext-101-64f": 78.4}
# the authors' poster, fine-tuning table: video top-1, the mean of 3 splits (verified)
FINE_TUNED = {
    ("ucf101", "resnext-101-64f"): 94.5, ("hmdb51", "resnext-101-64f"): 70.2,
    ("ucf101", "resnext-101"): 90.7, ("hmdb51", "resnext-101"): 63.8,
}  # fmt: skip
CLASSES = {"k400": 400, "k700": 700, "km": 1039, "ucf101": 101, "hmdb51": 51}


def expected_numbers(recipe_name: str) -> set[tuple[str, float, str, str]]:
    """{(metric, value, scope, status)} that the recipe of this name must carry: nothing for the
    2020 release's rows, whose per-model tables were not retrieved."""
    dataset, _, rest = recipe_name.partition("-")
    expected = set()
    if dataset == "k400":
        if rest in README_AVERAGE:
            expected.add(("average_top1_top5", README_AVERAGE[rest], ONE_RUN, VERIFIED))
        if rest in RECALLED_TOP1_TOP5:
            top1, top5 = RECALLED_TOP1_TOP5[rest]
            expected |= {("video_top1", top1, ONE_RUN, RECALLED)}
            expected |= {("video_top5", top5, ONE_RUN, RECALLED)}
        if rest in TEST_SET_AVERAGE:
            expected.add(("average_top1_top5", TEST_SET_AVERAGE[rest], TEST_SET, VERIFIED))
    model = rest.rsplit("-split", 1)[0]
    if (dataset, model) in FINE_TUNED:
        expected.add(("video_top1", FINE_TUNED[dataset, model], SPLIT_MEAN, VERIFIED))
    return expected
