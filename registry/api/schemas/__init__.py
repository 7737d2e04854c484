"""Request and response schemas, one module per domain; input (``XCreate``) and output
(``XPublic``) models are separate."""
