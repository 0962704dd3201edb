"""One-shot learning: metric-learning losses, P x K samplers, verification, identification and evaluation.

    >>> from zoo.tasks.embedding import TripletLoss, pk_batches, verify, identify
    >>> model = zoo.create_model("siamese")
    >>> model.compile("adam", loss=TripletLoss(margin=0.2, mining="semi_hard"))
    >>> model.fit(pk_batches(examples, p=16, k=4), epochs=10)
    >>> same, dist = verify(model, img_a, img_b, threshold=0.8)

Importing this package registers the `embedding` task for `zoo train`.
"""

from zoo.tasks.embedding import task  # noqa: F401,E402  (registers the embedding task)
from zoo.tasks.embedding.evaluation import (  # noqa: F401
    UNKNOWN,
    Gallery,
    embed,
    evaluate_embeddings,
    identify,
    oneshot_accuracy,
    roc_auc,
    sample_pairs,
    select_threshold,
    verification_accuracy,
    verify,
)
from zoo.tasks.embedding.losses import ContrastiveLoss, TripletLoss, contrastive_loss, pairwise_distances, triplet_loss  # noqa: F401
from zoo.tasks.embedding.sampler import filter_identities, pk_batches, split_identities  # noqa: F401
