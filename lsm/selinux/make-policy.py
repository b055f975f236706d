"""Writes the lane's small SELinux policy (policy.conf) and the long type's
name into a folder: just enough for the kernel to accept contexts with
distinct types, a 298-character type and up to 1024 categories, and the
initial SIDs up to netmsg (in the kernel's order): netmsg's context is what a
NetLabel CIPSO pass DOI peer gets as user:role:type, with its own level.
extended_socket_class gives SCTP sockets their own class (sctp_socket), the
only one besides unix_stream and tcp that SO_PEERSEC answers for. The guest
loads it permissive (the default without enforcing=1), so nothing is denied.

    python3 make-policy.py <out-dir>   then: checkpolicy -M -U allow -c 33 ...
"""
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
long_type = ("peersec_long_" + "x" * 400)[:296] + "_t"
assert len(long_type) == 298
categories = "\n".join(f"category c{i};" for i in range(1024))
policy = f"""class security
class process
class file
class dir
class unix_stream_socket
class unix_dgram_socket

sid kernel
sid security
sid unlabeled
sid fs
sid file
sid file_labels
sid init
sid any_socket
sid port
sid netif
sid netmsg

class process {{ transition dyntransition setexec setcurrent }}
class unix_stream_socket {{ connectto }}

sensitivity s0;
dominance {{ s0 }}
{categories}
level s0:c0.c1023;

mlsconstrain process transition ( h1 dom h2 );

policycap extended_socket_class;

type kernel_t;
type unlabeled_t;
type cli_t;
type srv_t;
type netmsg_t;
type {long_type};

role base_r;
role base_r types {{ kernel_t unlabeled_t cli_t srv_t {long_type} }};

allow kernel_t cli_t : process transition;
allow kernel_t srv_t : process transition;

user system_u roles {{ base_r object_r }} level s0 range s0 - s0:c0.c1023;
user user_u roles {{ base_r }} level s0 range s0 - s0:c0.c1023;

sid kernel system_u:base_r:kernel_t:s0
sid security system_u:object_r:unlabeled_t:s0
sid unlabeled system_u:object_r:unlabeled_t:s0
sid fs system_u:object_r:unlabeled_t:s0
sid file system_u:object_r:unlabeled_t:s0
sid file_labels system_u:object_r:unlabeled_t:s0
sid init system_u:object_r:unlabeled_t:s0
sid any_socket system_u:object_r:unlabeled_t:s0
sid port system_u:object_r:unlabeled_t:s0
sid netif system_u:object_r:unlabeled_t:s0
sid netmsg system_u:object_r:netmsg_t:s0
"""
with open(os.path.join(out, "policy.conf"), "w") as file:
    file.write(policy)
with open(os.path.join(out, "long_type"), "w") as file:
    file.write(long_type)
