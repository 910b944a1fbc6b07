"""The views, the one analysis path: each a function (store, suite[, jobs]) -> pyarrow.Table computed from
the results store (`jobs`: the suite's rows from `jobs.load_jobs`, when the caller computes several views
from one read, as a report does). `methods` and `teacher-size` are also the leaderboard's two tables
(kdbench.results.report.build_leaderboard, `kdbench leaderboard SUITE`); `failures.failures` lists failed
jobs; `render` and `plots` show any view; `reference` reads the published numbers.

- `takd`: teacher-assistant chains vs direct distillation (Mirzadeh et al. 2020)
- `teacher_size`: student accuracy against teacher size and accuracy (Cho & Hariharan 2019)
- `eskd`: student accuracy against the teacher's epoch and KD's stop epoch
- `methods`: every cell ranked, with how search-selected cells were chosen
- `ensembles`: ensemble teachers vs their best single member
- `hinton`: test errors (counts) of teachers, students alone and distilled (Hinton et al. 2015, MNIST)
- `efficiency`: accuracy against parameters, FLOPs and batch-1 latency, with the Pareto fronts
- `pose`: video pose PCK against FLOPs per frame (teacher frame by frame, students alone, DKD students)
- `sparsity`: accuracy against compression of dense and sparse students, alone and distilled (Hegde et al. 2020)
- `glue`: the fine-tuned models (suite `finetune:`): per model, parameters, latency, each task's score, the macro
- `crossmodal`: linear-probe accuracy of cross-modal transfers against the supervised student and the random floor

Every cell: mean, std, 95% t-interval over seeds, n, and the paired difference against the student
alone on the same seeds with its interval and whether it includes zero (see kdbench.results.stats).
"""

from __future__ import annotations

from .crossmodal import crossmodal
from .efficiency import efficiency
from .ensembles import ensembles
from .eskd import eskd
from .glue import glue
from .hinton import hinton
from .methods import methods
from .pose import pose
from .sparsity import sparsity
from .takd import takd
from .teacher_size import teacher_size

VIEWS = {"takd": takd, "teacher-size": teacher_size, "eskd": eskd, "methods": methods, "ensembles": ensembles,
         "hinton": hinton, "efficiency": efficiency, "pose": pose, "sparsity": sparsity, "crossmodal": crossmodal,
         "glue": glue}

__all__ = ["VIEWS", "crossmodal", "efficiency", "ensembles", "eskd", "glue", "hinton", "methods", "pose", "sparsity",
           "takd", "teacher_size"]
