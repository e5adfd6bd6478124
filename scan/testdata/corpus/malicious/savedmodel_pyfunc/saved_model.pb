k
"serve`

n0Placeholder

n1StatefulPartitionedCall'
%

fn
f0	WriteFile
f1PyFunc"¿