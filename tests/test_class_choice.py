"""Every place that turns classifier outputs into a class goes through predicted_class.

A one-column sigmoid head answers "class 1" when its output exceeds 0.5; argmax of one
column is always 0, so an accuracy computed with argmax is just the share of class 0.
"""

import numpy as np

from edgelstm import datasets, training
from edgelstm.core.metrics import class_accuracy, predicted_class

# sigmoid outputs and the labels they stand for (> 0.5 is class 1)
SIGMOID = np.array([[0.9], [0.2], [0.7], [0.6], [0.1]], np.float32)
LABELS = np.array([1, 0, 1, 0, 0])
RIGHT = 4 / 5  # every row but the fourth (0.6 says 1, the label is 0)


def test_predicted_class_of_a_sigmoid_head():
    assert predicted_class(SIGMOID).tolist() == [1, 0, 1, 1, 0]
    softmax = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    assert predicted_class(softmax).tolist() == [1, 0]


def test_class_accuracy_of_a_sigmoid_head():
    assert class_accuracy(SIGMOID, LABELS) == RIGHT


def test_training_metrics_of_a_sigmoid_head():
    x = np.zeros((len(LABELS), 3, 2), np.float32)
    data = datasets.Dataset(name="binary", task="classification", x_train=x, y_train=LABELS, x_test=x,
                            y_test=LABELS, class_names=["no", "yes"])
    # argmax would say 3/5 (the share of class 0), whatever the model answered
    assert training.evaluate(data, SIGMOID)["accuracy"] == RIGHT
