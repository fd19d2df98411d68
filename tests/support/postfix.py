"""The Postfix model's functions as the tests and benchmarks call them (the ``pf`` fixture).

The roles use one filter, mailstack.site.postfix_instances; the pieces it is made of (merging a
service or parameter layer, checking, rendering main.cf and master.cf) are Python functions of the
collection's plugin_utils, tested here directly, and the parser of master.cf text is the tests' own
(support/postfix_parse.py).
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_assembly import (
    postfix_instances,
    postfix_merge_params,
    postfix_merge_services,
)
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_model import (
    postfix_check_instances,
    postfix_check_services,
)
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_render import (
    postfix_main_cf,
    postfix_master_cf,
)

from support.postfix_parse import postfix_parse_master_cf

__all__ = [
    "AnsibleFilterError",
    "postfix_check_instances",
    "postfix_check_services",
    "postfix_instances",
    "postfix_main_cf",
    "postfix_master_cf",
    "postfix_merge_params",
    "postfix_merge_services",
    "postfix_parse_master_cf",
]
