"""Teachers: loading trained teachers and combining ensembles."""
