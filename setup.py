from pathlib import Path

from setuptools import find_packages, setup

version = next(
    line.split('"')[1]
    for line in Path("channels_rabbitmq_threaded/__init__.py").read_text().splitlines()
    if line.startswith("__version__")
)

setup(
    name="channels_rabbitmq_threaded",
    version=version,
    description="A Django Channels layer on RabbitMQ whose connection lives in its own thread: works from any loop",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    author="the channels_rabbitmq_threaded developers",
    license="MIT",
    license_files=["LICENSE"],
    packages=find_packages(include=["channels_rabbitmq_threaded", "channels_rabbitmq_threaded.*"]),
    package_data={"channels_rabbitmq_threaded": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "pika>=1.4,<2",
        "channels>=4.2.2,<5",
        "Django>=4.2",
        "asgiref>=3.9,<4",
        "msgpack>=1.0,<2",
    ],
    extras_require={
        "cryptography": ["cryptography>=3.4"],
        "prometheus": ["prometheus_client>=0.17"],
        "health": ["django-health-check>=4"],
        "otel": ["opentelemetry-api>=1.20"],
        "example": [
            "daphne>=4",
            "gunicorn>=21",
            "celery>=5.3",
            "uvicorn[standard]>=0.30",
            "prometheus_client>=0.17",
            "django-health-check>=4",
        ],
        "tests": [
            "pytest>=8",
            "pytest-asyncio>=0.24",
            "pytest-timeout>=2.3",
            "ruff>=0.6",
            "cryptography>=3.4",
            "websockets>=14",
            "prometheus_client>=0.17",
            "opentelemetry-sdk>=1.20",
            "playwright>=1.40",
            "daphne>=4",
            "gunicorn>=21",
            "gevent>=24",
            "pyuwsgi>=2.0.28",
            "celery>=5.3",
            "uvicorn[standard]>=0.30",
            "sphinx>=7",
            "myst-parser>=2",
            "mypy>=1.10",
            "types-pika",
            "janus>=2,<3",  # benchmarks/handoff.py, which tests/e2e/test_probes.py runs
            "types-channels",
        ],
        "docs": ["sphinx>=7", "myst-parser>=2"],
        "bench": ["janus>=2,<3", "channels_redis>=4.2", "channels_rabbitmq>=4", "channels-nats>=0.6"],
    },
    classifiers=[
        "Framework :: Django",
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "License :: OSI Approved :: MIT License",
        "Operating System :: POSIX :: Linux",
        "Typing :: Typed",
        "Topic :: System :: Networking",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Programming Language :: Python :: 3.14",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
    ],
)
