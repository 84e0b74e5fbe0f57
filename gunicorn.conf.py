"""Read by `gunicorn main:app` (gunicorn loads ./gunicorn.conf.py by itself): the same worker model
and counts as `python main.py`, taken from config.json and the environment."""
import os

from backend_to_api.serving import gunicorn_options, prepare_master
from backend_to_api.settings import load_settings

prepare_master(os.environ)

for _name, _value in gunicorn_options(load_settings()).items():
    globals()[_name] = _value
