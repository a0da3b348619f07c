"""Two-tower candidate retrieval on TFX and TensorFlow Recommenders."""

from setuptools import find_packages, setup

setup(
    name="tfx-two-tower-retrieval",
    version="0.1.0",
    description="TFX pipeline that trains, evaluates and serves a TFRS two-tower retrieval model",
    python_requires=">=3.9,<3.11",
    packages=find_packages(include=["clicklog", "clicklog.*", "components", "components.*",
                                    "models", "models.*", "pipeline", "pipeline.*",
                                    "serving", "serving.*", "retrieval"]),
    # Exact versions live in requirements.lock; these are the direct needs.
    install_requires=[
        "tfx==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-recommenders==0.7.3",
        "scann==1.3.2",
        "tensorflow-serving-api==2.16.1",
        "tornado>=6.5,<7",
        "apache-beam[gcp]==2.59.0",
        "kfp-pipeline-spec>=0.1.10,<0.2",
        "pyyaml",
    ],
    entry_points={
        "console_scripts": [
            "retrieval-pipeline=pipeline.cli:main",
            "retrieval-serve=serving.server:main",
            "retrieval-serve-status=serving.status:main",
            "retrieval-query=serving.client:main",
            "retrieval-datagen=clicklog.synthetic:main",
        ],
    },
)
