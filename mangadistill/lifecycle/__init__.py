"""The life cycle every model family travels, knowing no model type.

register (`registration`) -> offline gates (`gates`) -> staging -> shadow (`shadow`) -> staged rollout
(`rollout`) -> production -> monitor (`triggers`) -> roll back, through `service`; `record` owns what a
version carries (its tags), `stages` owns the aliases (the one resolver), `loading` loads a version.
"""
