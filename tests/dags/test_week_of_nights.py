"""A week of nights (tests/week.py): the DAG runs seven times through `dag.test()` on one
bucket whose data changes between nights as a real catalogue does (images added, deleted,
overwritten with new content, corrupt files and desktop/Spark leftovers uploaded, one night
with no change at all). The first night holds a decompression bomb and a file that is no image
in a folder of no class. After every night the outcome is what the data warrants and the
bucket stays tidy."""

from __future__ import annotations

import json

import pytest
from reliability import record
from week import FIRST_NIGHT_IMAGES, NOISE

pytestmark = pytest.mark.slow


def test_a_week_of_changing_nights(week_of_nights):
    outcomes, deployed = [], 0
    for number, observed in enumerate(week_of_nights.nights, start=1):
        states = observed.night.states
        assert observed.night.state == "success", (number, states)
        assert observed.skipped_as_noise == len(NOISE)
        assert observed.quarantined == observed.corrupt, number
        if number == 1:  # a night with quarantined objects deploys and publishes its gates' reports
            assert observed.data_docs_published
        if number == 3:
            assert states["nothing_to_train"] == "success" and states["deploy"] == "skipped", states
            outcomes.append("skip")
        else:
            assert states["deploy"] == "success", (number, states)
            deployed += 1
            quarantined = len(observed.quarantined)
            outcomes.append(f"deploy ({quarantined} quarantined)" if quarantined else "deploy")
        assert observed.versions == [(n, True) for n in range(1, deployed + 1)]
        assert json.loads(observed.night.pointer or b"null")["version"] == deployed
        assert observed.pointer_complete
        assert observed.untidy == [], number

    assert [outcome.split(" ")[0] for outcome in outcomes] == ["deploy"] * 2 + ["skip"] + ["deploy"] * 4
    record(
        "week-of-nights",
        f"7 nights on {FIRST_NIGHT_IMAGES}+ images: +2%/-1%/~1% overwritten per night, 0.5% corrupt on "
        "nights 2 and 5 (left in the bucket), a decompression bomb and a non-image on night 1, noise files, "
        "one night unchanged",
        7,
        ", ".join(outcomes) + f"; versions 1-{deployed} consecutive and complete",
        "nothing; pipeline storage (all but raw/) per night in KiB: "
        + " ".join(str(observed.pipeline_bytes // 1024) for observed in week_of_nights.nights),
    )
