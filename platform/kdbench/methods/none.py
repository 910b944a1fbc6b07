"""`none`: the student trained on its targets alone — the baseline every method is compared with.

Loss: the task's supervised loss (classification: cross-entropy, mean over the batch; regression: MSE;
video_pose: heatmap MSE; masked LM: cross-entropy over the masked positions).

Params defaults: (none)
"""

from __future__ import annotations

from .base import Method, Needs, register_method


@register_method
class NoDistillation(Method):
    name = "none"
    needs = Needs(teacher=False)
    tasks = ("classification", "regression", "video_pose", "masked_lm", "sequence_classification", "linear_probe")

    def forward(self, batch, student, teacher, state):
        task = self.ctx.task
        return {task.loss_term: task.loss(task.prediction(student), batch.y)}
