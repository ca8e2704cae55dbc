"""The click command line (installed as simam_deploy.cli): parse, call the library, print."""
