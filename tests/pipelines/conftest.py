import pytest

from surf_video.pipelines.tiny import tiny_hunyuan_pipeline, tiny_wan_pipeline


@pytest.fixture(scope="module")
def wan():
    return tiny_wan_pipeline("euler")


@pytest.fixture(scope="module")
def wan_unipc():
    return tiny_wan_pipeline("unipc")


@pytest.fixture(scope="module")
def hunyuan():
    return tiny_hunyuan_pipeline("euler")
