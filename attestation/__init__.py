"""chipreg protocol core: keys, endorsements, DSSE, usage reports, Merkle log, notes.

Pure: no file, network or database I/O. Functions take bytes and values and return typed
results or raise an :class:`attestation.errors.AttestationError` subclass.
"""
