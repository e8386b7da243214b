"""Create the topics rtindex uses (documents, behaviors, DLQ) when they are missing.

Uses the Kafka protocol's CreateTopics (kafka-python's admin client), so it works the
same against the embedded Tansu broker and a real Apache Kafka cluster. Idempotent: a
topic that exists, or that another process creates at the same moment, is left alone,
whatever its partition count.
"""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError, for_code

from rtindex.consumers.kafka_config import kafka_client_config
from rtindex.settings import Settings

log = logging.getLogger(__name__)

# -1: the broker's default.replication.factor (CreateTopics v4+, Kafka 2.4+), so the same
# call suits a one-broker dev setup and a replicated production cluster.
BROKER_DEFAULT_REPLICATION = -1


def rtindex_topics(settings: Settings) -> list[str]:
    k = settings.kafka
    return list(dict.fromkeys([k.documents_topic, k.behaviors_topic, k.dlq_topic]))


def ensure_topics(settings: Settings, partitions: int = 3, timeout_ms: int = 30_000) -> None:
    """Create whichever of the documents, behaviors and DLQ topics does not exist yet."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    admin = KafkaAdminClient(
        **kafka_client_config(settings, client_id=f"{settings.kafka.client_id}-admin"),
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        existing = set(admin.list_topics())
        missing = [t for t in rtindex_topics(settings) if t not in existing]
        if not missing:
            return
        response = admin.create_topics(
            [NewTopic(t, partitions, BROKER_DEFAULT_REPLICATION) for t in missing],
            timeout_ms=timeout_ms,
            raise_errors=False,
        )
        for result in response["topics"]:
            error = for_code(result["error_code"])
            if result["error_code"] == 0:
                log.info("created topic %s (%d partitions)", result["name"], partitions)
            elif error is TopicAlreadyExistsError:
                # Another process won the race: the topic exists, which is all we need.
                continue
            else:
                raise error(f"creating topic {result['name']}: {result['error_message']}")
    finally:
        admin.close()
