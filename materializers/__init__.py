"""ZenML materializers for the project's own artifact types (everything else uses ZenML's built-ins)."""

from materializers.intent_dataset_materializer import IntentDatasetMaterializer
from materializers.model_dir_materializer import ModelDirMaterializer
from materializers.teacher_labels_materializer import TeacherLabelsMaterializer

__all__ = ["IntentDatasetMaterializer", "ModelDirMaterializer", "TeacherLabelsMaterializer"]
