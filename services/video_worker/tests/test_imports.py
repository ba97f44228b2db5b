"""The worker image carries no web stack: the worker must run without FastAPI, Starlette, a web
server or SQLAlchemy (its requirements.txt no longer has them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

WEB_AND_DB = ("fastapi", "starlette", "uvicorn", "uvicorn_worker", "gunicorn", "sqlalchemy", "uvloop", "httptools")
ROOT = Path(__file__).resolve().parents[3]


def test_the_worker_starts_its_app_and_children_without_the_web_stack(tmp_path: Path) -> None:
    # A finder that refuses the packages the image lacks, then what a worker process runs: the app
    # module, worker_init's preparation and a pool child's set-up (logging, telemetry, metrics).
    script = textwrap.dedent(f"""
        import sys
        BLOCKED = {WEB_AND_DB!r}
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"the worker image has no {{name}}")
        sys.meta_path.insert(0, Refuse())
        from panorama.video_worker import celery_app
        from panorama.core.process import after_fork
        after_fork(celery_app.app.conf.panorama_settings, role="video-worker")
        celery_app.observability.on_child_start()
        obs = celery_app.observability
        obs._task_prerun(task_id="t1")
        obs._task_postrun(task_id="t1", task=type("Task", (), {{"name": "video.transcode"}})(), state="SUCCESS")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
    """)
    env = {
        "PATH": "/usr/bin:/bin",
        "PANORAMA_STORAGE_DIR": str(tmp_path / "storage"),
        "PANORAMA_STATE_DIR": str(tmp_path / "state"),
        "PANORAMA_LOG_JSON": "false",
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
