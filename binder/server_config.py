"""Give Jupyter Server on Binder the settings `make start` gives Voila (nbs/apps/voila.json): the server-side upload
limit and the connection class that applies it (htc_dl.serving.AppKernelConnection, which also lets a closed
page shut its kernel down), and Voila's page settings; plus a culler for kernels whose page went away without
saying so (a crashed tab), which matters in Binder's 2 GB. Run by binder/postBuild.

On Binder, Jupyter Server serves JupyterLab and, through the voila server extension, the app pages; it reads
jupyter_server_config.json and voila.json from the user's Jupyter config folder (JUPYTER_CONFIG_DIR, ~/.jupyter).
Preheated kernels are a feature of the standalone `voila` command only, so those keys are left out.
"""
import json
from pathlib import Path

from jupyter_core.paths import jupyter_config_dir

ROOT = Path(__file__).resolve().parent.parent
SERVER_KEYS = ("kernel_websocket_connection_class", "tornado_settings")
PREHEAT_KEYS = ("preheat_kernel", "default_pool_size")
# Not for `make start`: Voila's preheated kernels look idle since start-up, so a culler could stop one in the
# second between a page taking it and connecting to it. Binder has no preheating.
CULLING = {"cull_idle_timeout": 900, "cull_interval": 60, "cull_connected": False}


def merge_into(path, section, values):
    "Merge `values` into `section` of the JSON config file at `path` (created if missing), written atomically."
    config = json.loads(path.read_text()) if path.exists() else {}
    config.setdefault(section, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=1) + "\n")
    tmp.replace(path)


def main():
    voila = json.loads((ROOT/"nbs"/"apps"/"voila.json").read_text())
    folder = Path(jupyter_config_dir())
    merge_into(folder/"jupyter_server_config.json", "ServerApp", {k: voila["Voila"][k] for k in SERVER_KEYS})
    merge_into(folder/"jupyter_server_config.json", "MappingKernelManager", CULLING)
    merge_into(folder/"voila.json", "VoilaConfiguration",
               {k: v for k, v in voila["VoilaConfiguration"].items() if k not in PREHEAT_KEYS})
    print(f"wrote the upload limit and Voila settings into {folder}")


if __name__ == "__main__": main()
